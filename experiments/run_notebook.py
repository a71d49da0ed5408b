"""Execute ``scaling_law.ipynb`` in default mode and store it with its outputs (the committed version).

    python experiments/run_notebook.py            # a few minutes on a laptop CPU

The notebook's metadata records a hash of the code-cell sources that produced the outputs
(``metadata.rmtheory.sources_sha256``); ``tests/test_figures.py`` checks that it matches the current
sources and that no cell output is an error, so an edited notebook must be re-run before it is committed.
"""

from __future__ import annotations

import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOK = os.path.join(HERE, "scaling_law.ipynb")


def sources_sha256(nb) -> str:
    """Hash of the code cells' sources, in order (what the stored outputs depend on)."""
    h = hashlib.sha256()
    for c in nb.cells:
        if c.cell_type == "code":
            h.update(c.source.encode())
            h.update(b"\0")
    return h.hexdigest()


def main(argv=None) -> int:
    import nbclient
    import nbformat

    path = (argv if argv is not None else sys.argv[1:] or [NOTEBOOK])[0]
    nb = nbformat.read(path, as_version=4)
    os.environ["RMTHEORY_QUICK"] = "0"
    nbclient.NotebookClient(nb, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
    nb.metadata["rmtheory"] = {"mode": "default", "sources_sha256": sources_sha256(nb)}
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
