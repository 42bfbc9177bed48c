"""The README quotes no result that docs/results.md (filled from run folders) does not give."""

from __future__ import annotations

import re

from tests.helpers import REPO


def default_run_row() -> list[str]:
    """The cells of docs/results.md's row for the embedded default (``python -m vad.train``)."""
    results = (REPO / "docs" / "results.md").read_text()
    (row,) = [line for line in results.splitlines()
              if line.startswith("|") and "the embedded default" in line]
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def test_readme_figures_of_the_default_run_are_those_of_docs_results():
    readme = (REPO / "README.md").read_text()
    cells = default_run_row()
    assert "docs/results.md" in readme  # the README points to the rows instead of copying them
    # Any AUC/EER-like number the README quotes must be one of the row's, to the digits quoted.
    row_numbers = [float(n) for n in re.findall(r"\d+\.\d+", " ".join(cells[2:]))]
    for quoted in re.findall(r"(?<![\d.=-])0\.\d{2,4}(?![\d.])", readme):  # not lr=-0.01
        digits = len(quoted) - 2
        assert any(round(n, digits) == float(quoted) for n in row_numbers), (
            f"README quotes {quoted}; docs/results.md's default-run row gives {row_numbers}")
    # Its wall time ("takes about N s") within a quarter of the row's.
    quoted_s = re.search(r"takes about\s+(\d+)\s*s", readme)
    row_s = re.match(r"(\d+) s", cells[1])
    assert quoted_s and row_s, "README or docs/results.md lost the default run's wall time"
    assert abs(int(quoted_s.group(1)) - int(row_s.group(1))) <= 0.25 * int(row_s.group(1))


def summary_rows(results: str) -> tuple[list[list[str]], list[str]]:
    """docs/results.md's ``## Summary`` table rows (cells) and every table line after it."""
    lines = results.splitlines()
    start = lines.index("## Summary")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in lines[start:end] if line.startswith("| ") and "---" not in line]
    return rows[1:], [line for line in lines[end:] if line.startswith("|")]


def test_every_summary_number_is_a_measured_row_below_it():
    results = (REPO / "docs" / "results.md").read_text()
    rows, below = summary_rows(results)
    assert rows, "docs/results.md lost its ## Summary table"
    numbers = 0
    for dataset, method, reduced, full, paper, reference in rows:
        assert re.fullmatch(r"\d+\.\d % \(paper .+\)|—", paper), paper
        for cell in (reduced, full):
            if cell == "**not run**":
                continue
            value, spread, count, commits = re.fullmatch(
                r"(0\.\d{3})(?: ± (0\.\d{3}))? \((?:(\d+) runs: )?([\w, ]+)\)", cell).groups()
            commits = commits.split(", ")
            if count is None:
                assert any(f"| {value} |" in line.replace("**", "") and commits[0] in line
                           for line in below), (
                    f"summary {dataset}/{method}: {value} at {commits[0]} is no row below")
            else:  # a mean over seeds: rows at its commits, and the mean quoted below
                assert sum(any(c in line for c in commits) for line in below) >= int(count), (
                    dataset, method, cell)
                assert f"{value} ± {spread}" in results.split("## Summary")[1].split("\n## ", 1)[1], (
                    f"summary {dataset}/{method}: mean {value} ± {spread} is quoted nowhere below")
            numbers += 1
        if reference != "**not run**":
            value = re.match(r"(0\.\d{3}) \(", reference).group(1)
            assert any(f"| {value} |" in line and "model=framediff" in line for line in below), (
                f"summary {dataset}/{method}: framediff {value} is no row below")
            numbers += 1
    assert numbers, "the summary holds no measured number"
