/* serve_page.c: the one page `imgsearch serve` answers GET / with: a search
 * box, an image upload, k and the table; results as the contact sheet's grid
 * (html.c's style), drawn by a short script from /api/search without a reload.
 * A link may carry a search (/?text=T&k=K, /?row=R&table=T): it runs on load.
 * Self-contained: no external script, style or font. The script builds the
 * results with textContent and attributes, never with HTML from the answer,
 * so a file name cannot inject markup.
 */
#include "serve.h"

#include "html.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char page_script[] =
    "const $=id=>document.getElementById(id);\n"
    "function el(tag,cls,text){const e=document.createElement(tag);if(cls)e.className=cls;"
    "if(text!==undefined)e.textContent=text;return e;}\n"
    "function params(){return 'k='+encodeURIComponent($('k').value)+'&table='+encodeURIComponent($('table').value);}\n"
    "async function run(url,opts,what){\n"
    "  $('status').textContent='searching '+what+' ...';\n"
    "  const t0=performance.now();\n"
    "  let r,j;\n"
    "  try{r=await fetch(url,opts);j=await r.json();}catch(e){$('status').textContent='error: '+e;return;}\n"
    "  if(!r.ok){$('status').textContent='error '+r.status+': '+j.error;$('results').replaceChildren();return;}\n"
    "  render(j,what,performance.now()-t0);\n"
    "}\n"
    "function render(j,what,ms){\n"
    "  const g=$('results');g.replaceChildren();\n"
    "  const l=j.latency_ms;\n"
    "  $('status').textContent=j.results.length+' results for '+what+' ('+j.table+' table) in '+ms.toFixed(1)+"
    "' ms (embed '+l.embed.toFixed(1)+' ms, search '+l.search.toFixed(1)+' ms)';\n"
    "  for(const h of j.results){\n"
    "    const f=el('figure','hit');f.dataset.rank=h.rank;f.dataset.score=h.score;f.dataset.row=h.id;\n"
    "    const d=el('div','img');const im=el('img');im.alt='';im.loading='lazy';im.src='/api/thumb/'+h.id;"
    "d.appendChild(im);f.appendChild(d);\n"
    "    const c=el('figcaption');c.appendChild(el('b','','#'+h.rank));c.append(' ');"
    "c.appendChild(el('span','score',Number(h.score).toFixed(4)));c.append(' ');\n"
    "    const m=el('button','more','more like this');m.type='button';"
    "m.onclick=()=>run('/api/search?row='+h.id+'&'+params(),{},'row '+h.id);c.appendChild(m);\n"
    "    c.appendChild(el('br'));c.appendChild(el('span','path',h.path));f.appendChild(c);g.appendChild(f);\n"
    "  }\n"
    "}\n"
    "$('form').onsubmit=e=>{e.preventDefault();\n"
    "  const file=$('file').files[0];\n"
    "  if(file){run('/api/search?'+params(),{method:'POST',body:file},'the image '+file.name);return;}\n"
    "  const t=$('text').value;\n"
    "  if(t.trim())run('/api/search?text='+encodeURIComponent(t)+'&'+params(),{},'\\u201c'+t+'\\u201d');\n"
    "};\n"
    "$('clear').onclick=()=>{$('file').value='';};\n"
    /* a link may carry a search: /?text=T&k=K or /?row=R&table=T */
    "const u=new URLSearchParams(location.search);\n"
    "if(u.get('k'))$('k').value=u.get('k');\n"
    "if(u.get('table'))$('table').value=u.get('table');\n"
    "if(u.get('text')){$('text').value=u.get('text');$('form').requestSubmit();}\n"
    "else if(u.get('row'))run('/api/search?row='+encodeURIComponent(u.get('row'))+'&'+params(),{},"
    "'row '+u.get('row'));\n";

char *serve_page_make(const char *index_name, int synthetic, int has_semantic, int max_k, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>imgsearch serve: ", f);
    html_text(f, index_name, strlen(index_name));
    fprintf(f, "</title>\n<style>%s form{margin:1em 0}form input,form select,form button{font-size:14px;"
               "margin-right:.8em}form label{white-space:nowrap}#text{width:20em}#status{color:#555}button.more{font-size:11px;margin-left:.5em}"
               "</style></head><body>\n<h1>imgsearch: ",
            html_style);
    html_text(f, index_name, strlen(index_name));
    fputs("</h1>\n", f);
    if (synthetic)
        fputs("<p class=\"warn\" id=\"synthetic\">Synthetic weights: the image model holds synthetic weights, "
              "so these results are not meaningful.</p>\n",
              f);
    fprintf(f,
            "<form id=\"form\"><input id=\"text\" type=\"search\" placeholder=\"%s\"%s autofocus>"
            "<label>or an image <input id=\"file\" type=\"file\" accept=\"image/*\"></label>"
            "<button type=\"button\" id=\"clear\">clear image</button>"
            "<label>k <input id=\"k\" type=\"number\" value=\"12\" min=\"1\" max=\"%d\" style=\"width:5em\"></label>"
            "<label>table (images) <select id=\"table\"><option value=\"visual\">visual</option>%s</select></label>"
            "<button type=\"submit\">Search</button></form>\n"
            "<p id=\"status\"></p>\n<div id=\"results\" class=\"grid\"></div>\n<script>%s</script>\n</body></html>\n",
            has_semantic ? "describe an image" : "this index has no text model: search by image",
            has_semantic ? "" : " disabled", max_k,
            has_semantic ? "<option value=\"semantic\">semantic</option>" : "", page_script);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}
