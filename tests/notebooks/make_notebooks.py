"""Writes the toy stage notebooks of this folder (run it after editing this file):

    python tests/notebooks/make_notebooks.py
"""
import nbformat
from pathlib import Path

HERE = Path(__file__).resolve().parent
KS = {"name": "xfer-nb", "display_name": "Python (xfer-nb)", "language": "python"}


def cell(src, tags=None):
    c = nbformat.v4.new_code_cell(src)
    if tags:
        c.metadata["tags"] = tags
    return c


def stage_nb(stage):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KS
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# Toy `{stage}` stage for the sweep tests\n\nWrites a metric computed "
                                      "from its parameters (and its upstream run's metric) into `run_dir`; fails when `fail` is set "
                                      "or `seed` is 13."),
        cell('run_dir = ""\nupstream_dir = ""\nvalue = 1\ntext = ""\nfail = False\nsleep_s = 0.0',
             tags=["parameters"]),
        cell("import json, os, pathlib, time\n"
             "run = pathlib.Path(run_dir)\n"
             "assert pathlib.Path.cwd() == run, (pathlib.Path.cwd(), run)\n"
             "with open(run / 'executions.log', 'a') as f:\n"
             "    f.write(f'{os.getpid()}\\n')\n"
             "upstream_value = 0\n"
             "if upstream_dir:\n"
             "    upstream_value = json.loads((pathlib.Path(upstream_dir) / 'metrics.jsonl').read_text().splitlines()[0])['value']"),
        cell("(run / 'text_repr.txt').write_text(repr(text), encoding='utf-8')\n"
             "if sleep_s:\n"
             "    checkpoint = run / 'checkpoint.txt'\n"
             "    if checkpoint.exists():\n"
             "        print('resumed from', checkpoint)\n"
             "    else:\n"
             "        checkpoint.write_text('step 1')\n"
             "        time.sleep(sleep_s)"),
        cell("# seed 13 is unlucky: lets a params file make a run fail\n"
             "if fail or globals().get('seed') == 13:\n    raise ValueError(f'deliberate failure in {run.name}')"),
        cell(f"row = {{'run': run.name, 'stage': {stage!r}, 'metric': 'value', 'value': value + upstream_value,\n"
             "       'omp_num_threads': os.environ.get('OMP_NUM_THREADS')}\n"
             "(run / 'metrics.jsonl').write_text(json.dumps(row) + '\\n')\n"
             "row"),
    ]
    return nb


def analysis_nb():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KS
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Toy analysis: one table of every target run's metric"),
        cell('run_dir = ""\nupstream_dir = ""\noutputs_dir = ""\nparams_file = ""', tags=["parameters"]),
        cell("import json, pathlib\n"
             "rows = [json.loads(p.read_text().splitlines()[0])\n"
             "        for p in sorted(pathlib.Path(outputs_dir, 'runs', 'target').glob('*/metrics.jsonl'))]\n"
             "pathlib.Path(run_dir, 'metrics.jsonl').write_text(''.join(json.dumps({**r, 'stage': 'analysis'}) + '\\n' for r in rows))\n"
             "print(f'ANALYSIS OF {len(rows)} TARGET RUNS; params_file={params_file}')\n"
             "for r in rows:\n"
             "    print(r['run'], r['value'])"),
    ]
    return nb


for name in ("01_prepare_data", "02_intermediate_training", "03_target_training"):
    nbformat.write(stage_nb(name.split("_", 1)[1]), HERE / f"{name}.ipynb")
nbformat.write(analysis_nb(), HERE / "04_analysis.ipynb")
