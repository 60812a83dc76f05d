"""`python -m kerasllm.cli ...`: the same as the `kerasllm` console script."""

from kerasllm.cli import console_main

console_main()
