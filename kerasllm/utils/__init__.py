"""Small helpers at the bottom of the package's layering (they import no other kerasllm module).

- `files`: confinement of file names from data (`resolve_inside`), atomic writes, JSON reading
  whose errors name the file.
- `validation`: shared validation helpers (`closest`: the "did you mean" hint of error messages).
"""
