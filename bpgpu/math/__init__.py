"""The mathematics of backpropagation, written once against the array API standard.

No module here imports numpy, cupy or torch: each function takes its namespace from its arguments
(``array_api_compat.array_namespace``). ``tests/test_architecture.py`` enforces this.
"""
