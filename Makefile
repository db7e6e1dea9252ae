# Set-up is part of every target: the virtual environment is created and filled on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel first, so that resolving the package does not pull several GB of CUDA packages.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo demo-fast demo-quick toy-demo lint test test-slow bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m training.demo

# The demo model distilled into one step and one length candidate (D2), then scored like the demo.
demo-fast: $(STAMP)
	@test -f runs/demo/model/config.json || $(PY) -m training.demo
	$(PY) -m training.distill --teacher runs/demo/model --data data/generated/bible/train.jsonl --out runs/demo/fast \
		--prompts 8192 --steps 1500
	$(PY) -m training.demo --model runs/demo/fast/model

demo-quick: $(STAMP)
	$(PY) -m training.demo --config configs/demo_quick.yaml --test-size 100

toy-demo: $(STAMP)
	$(PY) -m training.train_toy --dataset ring --steps 3000 --out outputs/toy

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) bench/samplers.py
	$(PY) bench/train_throughput.py
	$(PY) bench/generation_throughput.py
	$(PY) bench/toy.py --quick

clean:
	rm -rf $(VENV) outputs runs .pytest_cache
