# The two commands: `make demo` and `make test`. Both install what is missing first.
.PHONY: install services demo test bench clean

install:
	@scripts/install.sh

services:
	@scripts/services.sh

demo: install services
	.venv/bin/hall demo

test: install services
	@scripts/run-tests.sh

bench: install services
	.venv/bin/python -m bench

clean:
	rm -rf .venv .pytest_cache build *.egg-info
