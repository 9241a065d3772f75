#!/usr/bin/env python3
"""check_tree.py: rules of the source tree that CI enforces (make check-tree).

  python3 scripts/check_tree.py [BUILD_DIR]

Without a build folder: leftovers (*.orig, *.rej, merge-conflict and branch
markers, build output such as CMakeCache.txt or objects outside ignored folders) and includes (no "../", no include cycles). With one: also the link
graph between source files (no cycles: a file's undefined symbols resolved in
another file form an edge) and the symbols the libraries export (public names
start with ims_ and are declared in include/imgsearch.h with IMS_API, and
every declared function is exported; every other global symbol of the static
library uses the private prefix imsi_). Names: only what include/imgsearch.h
declares may start with ims_ anywhere in the sources.
"""
import collections
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_EXT = ('.c', '.h', '.cu', '.cuh')
PUBLIC_PREFIX = 'ims_'
PRIVATE_PREFIX = 'imsi_'


def tracked_files():
    out = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if os.path.isfile(os.path.join(ROOT, f))]


def read(path):
    with open(os.path.join(ROOT, path), 'rb') as f:
        return f.read().decode('utf-8', 'replace')


CONFLICT = re.compile(r'^(<<<<<<<|>>>>>>>)( |$)|^=======$', re.M)
# Section markers that branches left behind: exactly three dashes each side.
BRANCH_MARKER = re.compile(r'(?<![-\w])--- \S[^\n]*? ---(?!-)')


# A CMake build folder, object files or libraries committed or left in the tree.
BUILD_OUTPUT = re.compile(r'(^|/)(CMakeCache\.txt|CMakeFiles/|\.ninja_deps|[^/]+\.(o|so|a))$|(^|/)CMakeFiles/')


def check_leftovers(files, problems):
    for f in files:
        if f.endswith(('.orig', '.rej')) or os.path.basename(f).startswith('.#'):
            problems.append(f'{f}: a merge or patch leftover')
            continue
        if BUILD_OUTPUT.search(f):
            problems.append(f'{f}: build output in the source tree (ignore its folder in .gitignore)')
            continue
        if f.startswith('tests/fixtures/') or f.startswith('data/') or f == 'scripts/check_tree.py':
            continue
        if not f.endswith(SOURCE_EXT + ('.txt', '.md', '.sh', '.py', '.cmake', 'Makefile')):
            continue
        text = read(f)
        for m in CONFLICT.finditer(text):
            problems.append(f'{f}:{text.count(chr(10), 0, m.start()) + 1}: merge-conflict marker')
        for m in BRANCH_MARKER.finditer(text):
            problems.append(f'{f}:{text.count(chr(10), 0, m.start()) + 1}: branch marker "{m.group(0)}"')


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
INCLUDE_ROOTS = ['engine', '', 'include', 'tests/common', 'tests']


def resolve_include(src, name):
    for base in [os.path.dirname(src)] + INCLUDE_ROOTS:
        p = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(ROOT, p)):
            return p
    return None


def find_cycles(graph):
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter[0]; counter[0] += 1
        stack.append(start); on_stack.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]; counter[0] += 1
                    stack.append(nxt); on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop(); on_stack.discard(w); comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def check_includes(files, problems):
    graph = collections.defaultdict(set)
    for f in files:
        if not f.endswith(SOURCE_EXT) or f.startswith('tests/fixtures/'):
            continue
        for m in INCLUDE.finditer(read(f)):
            name = m.group(1)
            if name.startswith('../'):
                problems.append(f'{f}: includes "{name}" (use a path from a private root)')
            target = resolve_include(f, name)
            if target:
                graph[f].add(target)
    for comp in find_cycles(graph):
        problems.append('include cycle: ' + ' <-> '.join(comp))


def nm(path, *flags):
    out = subprocess.run(['nm', *flags, path], capture_output=True, text=True, check=True).stdout
    return out


def object_sources(build):
    """object file -> source path, for the library targets' objects."""
    objs = {}
    for d, _, names in os.walk(build):
        for n in names:
            if n.endswith('.o') and '/CMakeFiles/imgsearch' in d + '/':
                rel = os.path.relpath(os.path.join(d, n), build)
                m = re.search(r'CMakeFiles/[^/]+\.dir/(.*)\.o$', rel)
                if m and os.path.isfile(os.path.join(ROOT, m.group(1))):
                    objs[os.path.join(d, n)] = m.group(1)
    return objs


def check_link_graph(build, problems):
    objs = object_sources(build)
    if not objs:
        problems.append(f'{build}: no library objects found (build first)')
        return
    defined, undefined = {}, {}
    for obj, src in objs.items():
        for line in nm(obj, '--defined-only', '-g').splitlines():
            parts = line.split()
            if len(parts) == 3:
                defined.setdefault(parts[2], src)
        undefined[src] = {l.split()[-1] for l in nm(obj, '-u').splitlines() if l.strip()}
    graph = {src: {defined[s] for s in syms if s in defined and defined[s] != src}
             for src, syms in undefined.items()}
    for comp in find_cycles(graph):
        problems.append('link cycle between files: ' + ' <-> '.join(comp))


def public_names():
    """The functions include/imgsearch.h declares (IMS_API marks each)."""
    return set(re.findall(r'^IMS_API\b[^(]*?\b(ims_[a-z0-9_]+)\s*\(', read('include/imgsearch.h'), re.M))


def check_symbols(build, problems):
    public = public_names()
    path = os.path.join(build, 'libimgsearch.so')
    if not os.path.isfile(path):
        problems.append(f'{path}: not built')
        return
    exported = set()
    for line in nm(path, '-D', '--defined-only').splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[1] not in 'TDBRVWi':
            continue
        name = parts[2]
        if name.startswith(('_init', '_fini')) or name in ('_edata', '_end', '__bss_start'):
            continue
        exported.add(name)
        if not name.startswith(PUBLIC_PREFIX) or name not in public:
            problems.append(f'libimgsearch.so: exports {name}, which is not in include/imgsearch.h')
    for name in sorted(public - exported):
        problems.append(f'libimgsearch.so: {name} is declared in include/imgsearch.h but not exported '
                        '(missing IMS_API or definition)')
    path = os.path.join(build, 'libimgsearch.a')
    if not os.path.isfile(path):
        problems.append(f'{path}: not built')
        return
    for line in nm(path, '-g', '--defined-only').splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[1] in 'UwvN':
            continue
        name = parts[2]
        if name.startswith(PRIVATE_PREFIX) or (name.startswith(PUBLIC_PREFIX) and name in public):
            continue
        if name.startswith(('__', 'DW.ref.', '_Z', '.')):
            continue  # compiler-generated (CUDA fat binaries, personality routines)
        if name.startswith('cublas'):
            continue  # kernels/cuda/cublas_shim.c's forwarders keep cuBLAS's names (hidden in the .so)
        problems.append(f'libimgsearch.a: global {name} is neither public ({PUBLIC_PREFIX}, in imgsearch.h) '
                        f'nor private ({PRIVATE_PREFIX})')


def check_names(files, problems):
    """Only what include/imgsearch.h declares may be called ims_*."""
    public = set(re.findall(r'\b(ims_[a-z0-9_]+)\b', read('include/imgsearch.h')))
    for f in files:
        if not f.endswith(SOURCE_EXT) or f.startswith('tests/fixtures/') or f == 'include/imgsearch.h':
            continue
        text = read(f)
        for m in re.finditer(r'\b(ims_[a-z0-9_]+)\b', text):
            name = m.group(1)
            if name not in public and not (name.endswith('_') and any(p.startswith(name) for p in public)):
                line = text.count('\n', 0, m.start()) + 1
                problems.append(f'{f}:{line}: {name} starts with ims_ but is not public (use imsi_)')


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else None
    files = tracked_files()
    problems = []
    check_leftovers(files, problems)
    check_includes(files, problems)
    check_names(files, problems)
    if build:
        check_link_graph(build, problems)
        check_symbols(build, problems)
    for p in problems:
        print(p)
    if problems:
        print(f'check_tree: {len(problems)} problem(s)', file=sys.stderr)
        return 1
    print('check_tree: the tree follows its rules' + (f' (and {build})' if build else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
