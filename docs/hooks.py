"""mkdocs hook: the CLI reference page is generated from the parsers (``rmtheory._cli_docs``) at build time."""

MARKER = "<!-- cli-reference -->"


def on_page_markdown(markdown, page, config, files):
    if MARKER in markdown:
        from rmtheory._cli_docs import markdown as cli_markdown

        markdown = markdown.replace(MARKER, cli_markdown())
    return markdown
