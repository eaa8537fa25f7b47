# multimnist — `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
DATA ?= data/synth
BACKBONE ?= small_cnn
EXP ?= default
FOLDS ?= 0,1,2,3,4
ARGS ?=
REAL ?=
export NO_ALBUMENTATIONS_UPDATE := 1

.DEFAULT_GOAL := help
.PHONY: help setup test test-slow lint demo demo-full recipe pretrain claims claims-full data show-data train sweep ensemble curves predict bench bench-synth bench-train bench-precision bench-recipe bench-scale bench-full bench-stream stats clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,launchers,wandb,search,imagenet]'
	$(PY) -m pip check
	touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the package, dev tools and extras against constraints.txt (re-runs when either changes)

test: setup ## Run the fast test suite (< 10 min on 2 cores; TEST_WORKERS=1 runs it in one process)
	$(PY) -m pytest -q -n $${TEST_WORKERS:-2}

test-slow: setup ## Run the slow end-to-end tests
	$(PY) -m pytest -q -m slow

lint: setup ## ruff check + format check
	$(VENV)/bin/ruff check multimnist tests scripts
	$(VENV)/bin/ruff format --check multimnist tests scripts

data: setup ## Generate the realistic synthetic dataset into DATA (default data/synth; N_TRAIN, N_TEST, SEED to change)
	$(PY) -m multimnist.synth out=$(DATA) n_train=$${N_TRAIN:-2000} n_test=$${N_TEST:-500} seed=$${SEED:-0} overwrite=true

show-data: setup ## A picture of generated images with their letters (REAL=DIR adds real ones): data_preview.png
	$(PY) -m multimnist.synth.show out=data_preview.png $(if $(REAL),real=$(REAL)) $(ARGS)

stats: setup ## Print realism statistics of DATA (default data/synth), beside a folder of real images if REAL=DIR is given
	test -d $(DATA) || $(MAKE) data
	$(PY) -m multimnist.synth.stats $(DATA) $(REAL)

train: setup ## Train one fold: make train BACKBONE=effnet_b5 EXP=name FOLD=0 ARGS="trainer.epochs=5"
	$(PY) -m multimnist.train data.root=$(DATA) exp=$(EXP) backbone=$(BACKBONE) fold=$${FOLD:-0} $(ARGS)

sweep: setup ## Train the folds (Hydra multirun): make sweep BACKBONE=effnet_b5 EXP=name FOLDS=0,1,2,3,4
	$(PY) -m multimnist.train data.root=$(DATA) exp=$(EXP) backbone=$(BACKBONE) fold=$(FOLDS) $(ARGS) -m

ensemble: setup ## Ensemble the folds of EXP into experiments/EXP/ensemble/submission.csv
	$(PY) -m multimnist.ensemble exp=$(EXP) $(ARGS)

curves: setup ## Training curves of EXP's folds, finished or running: experiments/EXP/curves.png
	$(PY) scripts/curves.py $(EXP)

predict: setup ## Predict a folder of PNGs with an ensembled EXP: make predict EXP=name IMAGES=DIR OUT=pred.csv
	$(PY) -m multimnist.predict exp=$(EXP) images=$(IMAGES) out=$${OUT:-predictions.csv} $(ARGS)

demo: setup ## The main job end to end on generated data (recipe=demo): data, pretraining, 5 folds, ensemble (~7 min on 2 cores)
	$(PY) -m multimnist.recipe recipe=demo $(ARGS)

demo-full: setup ## The full task (10-14 letters, any rotation) on a CPU (recipe=demo_full): data, 60-epoch glyph pretraining, 5 folds, ensemble (25-50 min)
	$(PY) -m multimnist.recipe recipe=demo_full $(ARGS)

recipe: setup ## Any recipe end to end: make recipe NAME=cpu_full ARGS="data.root=DIR mnist_data=mnist_data/" (no NAME: the recipes)
	@if [ -z "$(NAME)" ]; then $(PY) -m multimnist.recipe --help | sed -n '/== Recipes/,/^$$/p'; else $(PY) -m multimnist.recipe recipe=$(NAME) $(ARGS); fi

bench-full: setup ## Every full-task recipe on procedural and real-handwriting data, 5 folds each (hours): make bench-full ARGS="--dacon7 mnist_data/"
	$(PY) scripts/bench_full.py $(ARGS)

pretrain: setup ## Glyph pretraining: make pretrain BACKBONE=fcn EXP=name ARGS="trainer.epochs=20"
	$(PY) -m multimnist.pretrain backbone=$(BACKBONE) exp=$(EXP) $(ARGS)

claims: demo ## Re-measure the seed's claims on the +-15 degree benchmark (4 5-fold CPU runs, ~25 min) into experiments/README.md
	$(PY) scripts/claims.py

claims-full: demo-full ## The claims on the full task (any rotation): its 40-epoch pretraining, 10 fold runs, ~45 min, into experiments/README.md
	$(PY) -m multimnist.pretrain backbone=fcn exp=glyphs_fcn_e40 trainer.epochs=40 crops.per_epoch=30000 trainer.precision=bf16 trainer.channels_last=true trainer.progress=false
	$(PY) scripts/claims.py --bench full

bench: bench-synth bench-train ## Run every benchmark

bench-synth: setup ## Benchmark the generator: images/s per core, PNG writing included
	$(PY) scripts/bench_synth.py

bench-train: setup ## Benchmark the trainer's data path: model loop vs trainer, img/s and ratio
	$(PY) scripts/bench_train.py --backbone $(BACKBONE)

bench-recipe: setup ## A preset vs the plain 40-line loop on eased realistic data: make bench-recipe ARGS="--glyphs dacon7 --glyphs-path DIR"
	$(PY) scripts/bench_recipe.py $(ARGS)

bench-scale: setup ## Every stage at the competition's size (50,000 + 5,000 images): wall time and peak memory (~20 min)
	$(PY) scripts/bench_scale.py $(ARGS)

bench-stream: setup ## The synthetic stream's img/s per loader worker beside the trainer's consumption: make bench-stream ARGS="--backbone tf_effnet_lite0"
	$(PY) scripts/bench_stream.py $(ARGS)

bench-precision: setup ## Training-step img/s by precision and channels_last (GPU: BACKBONE=effnet_b5 ARGS="--batch 128")
	$(PY) scripts/bench_precision.py --backbone $(BACKBONE) $(ARGS)

clean: ## Remove caches and generated data (keeps .venv)
	rm -rf data .pytest_cache .ruff_cache
