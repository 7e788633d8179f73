# Set-up, tests and the demo. `make test` is the test command; CI calls it through .ci/run,
# then `make check-deploy` (the image, the compose file, the units, the alert rules, for real).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install softhsm lint test unit integration demo bench contracts lock lock-upgrade settings-docs check-deploy clean

install: $(VENV)/.installed node_modules/.installed

# Every package, direct or not, comes from requirements/lock.txt at its locked version and hash:
# a new release upstream changes nothing here until the lock is refreshed on purpose.
$(VENV)/.installed: setup.cfg setup.py requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
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

# The pkcs11 signer's tests make their own SoftHSM2 tokens with OpenSC's pkcs11-tool: installed
# from Debian when missing (as root, as CI runs), as check-deploy installs podman.
softhsm: install
	$(PY) -m devnet.softhsm

test: install lint softhsm
	mkdir -p build
	$(PY) -m pytest --log-file=build/test.log --log-file-level=DEBUG
	$(PY) -m devnet.secrets_check build/test.log

unit: install
	$(PY) -m pytest tests/unit

integration: install softhsm
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

# The lock: requirements/lock.txt holds every package of setup.cfg (with the devnet and test
# extras) and requirements/tools.in, with hashes; runtime.txt and devnet.txt are the image's
# parts of it, resolved with the lock as constraints, so they hold the same versions.
# `make lock` keeps every pin that still fits setup.cfg; `make lock-upgrade` moves all to the
# newest releases. Both need the registry; nothing else does.
LOCK = $(VENV)/bin/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command 'make lock'
lock: install
	$(LOCK) $(UPGRADE) setup.cfg requirements/tools.in --extra devnet --extra test -o requirements/lock.txt
	$(LOCK) setup.cfg -c requirements/lock.txt -o requirements/runtime.txt
	$(LOCK) setup.cfg --extra devnet -c requirements/lock.txt -o requirements/devnet.txt

lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

# .env.example and docs/configuration.md from the settings table (depeg_processor/config_table.py);
# a unit test fails while the committed files differ from what this writes.
settings-docs: install
	$(PY) -m depeg_processor.config_docs

# Rebuild the test double's ABI and bytecode (committed under contracts/build).
contracts: node_modules/.installed
	node contracts/compile.mjs

clean:
	rm -rf $(VENV) node_modules .pytest_cache build *.egg-info
