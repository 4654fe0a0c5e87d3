# The two commands (README): `make demo` and `make test`. Both set everything up first.
.PHONY: demo test setup lint bench

setup:
	./scripts/bootstrap

demo: setup
	.venv/bin/alertline demo

test: setup
	./scripts/test

lint: setup
	.venv/bin/ruff check alertline services tests bench
	.venv/bin/mypy alertline services

bench: setup
	./bench/run
