"""File names in one-line reports: a name may hold a newline or other control characters (any byte but / and NUL
is allowed), which would split or garble the report; they are shown escaped, as Python writes them ('\\n')."""


def printable(text):
    """`text` with every non-printable character escaped (a newline becomes backslash-n); other text unchanged."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(character if character.isprintable() else repr(character)[1:-1] for character in text)
