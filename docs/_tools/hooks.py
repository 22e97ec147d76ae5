"""MkDocs hook (``hooks:`` in mkdocs.yml): the benchmark pictures join the site without a copy in docs/.

Every ``benchmarks/results/*.png`` is served as ``results/img/<name>.png``, so the results pages show the
pictures the benchmarks drew last (``![...](img/<name>.png)`` on a ``docs/results/`` page); a picture that
is gone makes ``mkdocs build --strict`` fail on the link. Nothing here imports fpnas or torch, and nothing
is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def on_files(files: Files, config) -> Files:
    for png in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"results/img/{png.name}", abs_src_path=str(png)))
    return files
