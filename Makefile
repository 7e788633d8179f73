# Set-up, tests and the demo. `make test` is the test command; CI calls it through .ci/run,
# then `make check-deploy` (the image, the compose file, the units, the alert rules, for real).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install lint test unit integration demo bench contracts pins check-deploy clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	ls node_modules/@foundry-rs/anvil-*/bin/anvil >/dev/null 2>&1 \
		|| { echo "anvil binary missing under node_modules/@foundry-rs"; exit 1; }
	touch $@

# The full run's log (every logger at DEBUG) is then searched for the processor's secrets:
# the test mnemonic and the private key it derives must appear nowhere.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: install lint
	mkdir -p build
	$(PY) -m pytest --log-file=build/test.log --log-file-level=DEBUG
	$(PY) -m devnet.secrets_check build/test.log

unit: install
	$(PY) -m pytest tests/unit

integration: install
	$(PY) -m pytest tests/integration

demo: install
	$(PY) -m devnet.demo

# As root: installs podman, runc, mmdebstrap and prometheus from Debian when missing, builds
# both image targets and runs the runtime image on loopback (see docs/deployment.md, "With Docker").
# CHECK_DEPLOY_ARGS=--cold starts from an empty image store.
check-deploy: install
	$(PY) -m devnet.check_deploy $(CHECK_DEPLOY_ARGS)

# By hand, not in CI: about twelve minutes in all.
bench: install
	$(PY) -m bench.throughput
	$(PY) -m bench.scaleout
	$(PY) -m bench.replay
	$(PY) -m bench.real_product

# The image's pinned requirements (deploy/image/requirements*.txt) from the installed versions.
pins: install
	$(PY) -m devnet.pins

# Rebuild the test double's ABI and bytecode (committed under contracts/build).
contracts: node_modules/.installed
	node contracts/compile.mjs

clean:
	rm -rf $(VENV) node_modules .pytest_cache build *.egg-info
