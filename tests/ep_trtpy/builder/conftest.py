"""Builder tests: helpers live in builder_testutil.py and graph_runner.py beside this file."""
