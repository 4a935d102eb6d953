# Two commands on a fresh machine: `make run` and `make test`.
# Both create .venv when missing, install the locked packages, install native BLAS
# (when root), warm the Delta jar cache, then do their job. The second time each
# step is a stamp check and costs nothing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
MARQUEE := $(VENV)/bin/marquee
STATE := .marquee
INSTALL_STAMP := $(VENV)/.installed
BLAS_STAMP := $(STATE)/.blas-checked
JARS_STAMP := $(STATE)/.delta-jars-warm
JARS_BY_SPARK := $(STATE)/.delta-jars-by-spark
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: bench-scale setup jars-by-spark run test bench lint format clean airflow mlflow

# The packages ship as source only. Python compiles a module on its first import and
# keeps the .pyc beside it; with PYTHONDONTWRITEBYTECODE it would compile Great
# Expectations, MLflow and Airflow again in every process (10-15 s each). So the commands
# make starts keep their bytecode, and only what they import is ever compiled (compiling
# every installed package up front cost set-up 18 s).
unexport PYTHONDONTWRITEBYTECODE

# Side by side (-j): the packages, the BLAS library and the locked Delta jars. Only when
# the locked jars could not be fetched does Spark resolve them itself, on a first start
# after the install.
setup:
	@$(MAKE) --no-print-directory -s -j3 $(INSTALL_STAMP) $(BLAS_STAMP) $(JARS_STAMP)
	@if [ -f $(JARS_BY_SPARK) ]; then $(MAKE) --no-print-directory jars-by-spark; fi

$(INSTALL_STAMP): pyproject.toml requirements.lock Makefile
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Marquee needs Python 3.11" >&2; exit 1; }
	@command -v java >/dev/null || { echo "error: java not found; Marquee needs Java 17 (Debian: apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
	@echo "set-up: Python packages into $(VENV) (locked versions; about half a minute once downloaded)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.4"
	@$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.lock
	@$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $@

# MLlib loads BLAS through netlib's JNI shim, which looks for libblas.so.3.
# OpenBLAS provides it; without it MLlib prints `netlib-blas: JNI_OnLoad ... failed`
# and falls back to slower Java code.
$(BLAS_STAMP):
	@mkdir -p $(STATE)
	@if ldconfig -p 2>/dev/null | grep -q 'libblas.so.3 '; then \
		echo "native BLAS: present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "native BLAS: installing libopenblas0-pthread"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread) >/dev/null \
			|| echo "native BLAS: install failed; MLlib will use its slower Java BLAS"; \
	else \
		echo "native BLAS: skipped (not root or no apt-get); install libopenblas0-pthread for faster MLlib"; \
	fi
	@touch $@

# Delta's jars pinned in infra/delta-jars.lock, straight from Maven Central with their
# checksums (under a second; no JVM on set-up's critical path). Should that fail (no
# access to Maven Central), the folder is left for Spark to fill. A lock behind the
# installed Delta fails tests/test_spark_session.py.
$(JARS_STAMP): infra/delta-jars.lock
	@mkdir -p $(STATE)
	@rm -f $(JARS_BY_SPARK)
	@$(PYTHON) infra/delta_jars.py fetch --state-dir $(STATE) || touch $(JARS_BY_SPARK)
	@touch $@

# Spark fetches Delta's jars from Maven on its first start (a screen of Ivy report: kept in
# the log, shown only on failure); doctor keeps a copy that later starts load directly.
jars-by-spark: $(INSTALL_STAMP)
	@echo "set-up: starting Spark once to fetch Delta's jars (log: $(STATE)/doctor.log)"
	@$(MARQUEE) doctor --warm --set spark.show_progress=false >$(STATE)/doctor.log 2>&1 \
		|| { cat $(STATE)/doctor.log >&2; exit 1; }
	@grep -E "^(spark |MLlib|Delta jars)" $(STATE)/doctor.log || true
	@rm -f $(JARS_BY_SPARK)

run: setup
	@$(MARQUEE) demo

# Two pytest workers, whole test modules at a time (module fixtures build Delta lakes
# once), handed out longest first (tests/conftest.py orders them; --no-loadscope-reorder
# keeps that order). One worker's Spark JVM keeps only 1.3 of the two cores busy; two keep
# both: the same tests on a quiet machine took 1,095 s against one worker's 1,397 s.
# --durations: the slowest tests in every log, to keep the suite inside CI's budget.
TEST_WORKERS ?= 2

# The import contracts first (pyproject.toml, [tool.importlinter]; under a second): an import
# that runs back up a layer, or a circle, fails the run before any Spark starts.
test: setup
	@$(VENV)/bin/lint-imports --no-cache >$(STATE)/lint-imports.log 2>&1 \
		&& grep -E "^Contracts:" $(STATE)/lint-imports.log \
		|| { cat $(STATE)/lint-imports.log >&2; exit 1; }
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

# The reference tools the benchmarks compare with that the tests do not need (implicit).
$(BENCH_STAMP): bench/requirements.lock $(INSTALL_STAMP)
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r bench/requirements.lock
	touch $@

bench: setup $(BENCH_STAMP)
	$(PY) bench/run_bench.py
	$(PY) bench/bench_pit.py --verify --set spark.driver_memory=12g --set spark.shuffle_partitions=64
	$(PY) bench/bench_features.py
	$(PY) bench/bench_backfill.py --set spark.driver_memory=12g
	$(PY) bench/bench_recs.py
	$(PY) bench/bench_models.py
	$(PY) bench/bench_pseudonymize.py
	$(PY) bench/bench_platform.py --set spark.show_progress=false

# The platform at several member counts from empty lakes, one after the other, then the
# log-log fit of each stage's seconds against accounts (bench/scaling.py). At the default
# counts it takes most of a day on 2 cores: run a count at a time with SCALES=...
SCALES ?= 100000 500000 2000000
bench-scale: setup $(BENCH_STAMP)
	@for n in $(SCALES); do \
		titles=$$(( n >= 1000000 ? 20000 : 5000 )); \
		$(PY) bench/bench_platform.py --accounts $$n --titles $$titles --peers \
			--set spark.driver_memory=16g --set spark.show_progress=false || exit 1; \
	done
	$(PY) bench/scaling.py $$(for n in $(SCALES); do ls -t bench/results/platform-$${n}x70d-*.json | head -1; done)

# Airflow on this machine: SQLite and every component in one `airflow standalone`, the DAGs
# of dags/, state under .marquee/airflow (the runs `make run` made are there). The Spark
# jobs go to the `marquee_spark` connection: spark.master of the config (local[2]; a
# cluster with --set spark.master=spark://host:7077). UI on http://localhost:8080 (login:
# see the standalone output).
airflow: setup
	$(MARQUEE) airflow standalone

# The MLflow UI on the embedded store (.marquee/mlflow), http://localhost:5000.
mlflow: setup
	$(MARQUEE) mlflow-ui

lint: $(INSTALL_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: $(INSTALL_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(STATE) spark-warehouse metastore_db derby.log
