# Shortcuts over the README's commands (each target is one line you can also run by hand).
.PHONY: install demo test lint format bench

install:
	python -m pip install -e ".[dev]"

demo:
	safetygraph demo

test:
	python -m pytest

lint:
	python -m ruff check . && python -m ruff format --check .

format:
	python -m ruff check --fix . && python -m ruff format .

bench:
	python bench/decont.py --rows 100000 --evals 5000
	python bench/qa_file.py --rows 200000
