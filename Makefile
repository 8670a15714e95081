# Shortcuts over the README's commands (each target is one line you can also run by hand).
.PHONY: install demo test test-fast lint format bench wheel-check

install:
	python -m pip install -e ".[dev]"

demo:
	safetygraph demo

test:
	python -m pytest

test-fast:
	python -m pytest -m "not slow and not engine and not browser"

lint:
	python -m ruff check . && python -m ruff format --check .

format:
	python -m ruff check --fix . && python -m ruff format .

bench:
	python bench/decont.py --rows 100000 --evals 5000
	python bench/qa_file.py --rows 200000

wheel-check:
	.ci/wheel-check python
