"""tokenizer_escape.py: the line escape of the tokenizer corpus, shared by
tests/fixtures/tokenizer/make_corpus.py, make_expected.py and tests/cli/tokenizer_diff.py.

A corpus line is UTF-8 text in which: \\\\ is a backslash, \\n LF, \\r CR and
\\xHH one raw byte (escape() writes it for invalid UTF-8, which the C side sees
as bytes and the Python side as str via decode(errors="replace"), and for the
other ASCII controls, so that the file stays plain text). tests/unit/test_tokenizer.c and
`imgsearch tokenize --escaped` decode the same way.
"""


def escape(data: bytes) -> str:
    text = data.decode("utf-8", errors="surrogateescape")
    out = []
    for ch in text:
        c = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif 0xDC80 <= c <= 0xDCFF:
            out.append("\\x%02X" % (c - 0xDC00))
        elif c < 0x20 or c == 0x7F:
            out.append("\\x%02X" % c)  # ASCII controls too, so the file stays plain text
        else:
            out.append(ch)
    return "".join(out)


def unescape(line: str) -> bytes:
    out = bytearray()
    raw = line.encode("utf-8")
    i = 0
    while i < len(raw):
        b = raw[i]
        if b != 0x5C or i + 1 >= len(raw):
            out.append(b)
            i += 1
            continue
        c = raw[i + 1]
        if c == ord("n"):
            out.append(10)
            i += 2
        elif c == ord("r"):
            out.append(13)
            i += 2
        elif c == ord("x") and i + 3 < len(raw):
            out.append(int(raw[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(c)
            i += 2
    return bytes(out)


def to_text(data: bytes) -> str:
    """What Python's tokenizers sees for these bytes."""
    return data.decode("utf-8", errors="replace")
