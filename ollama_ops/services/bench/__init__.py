"""`sollama bench`: the service side. `config` turns flags into a `BenchConfig`, `run` drives one run or a sweep
(`sweep`) over `runner`'s hot loop with a `session` for the preflight, and returns a `result.BenchResult`.

Importing this package imports nothing heavy; `run` (through `session`) imports aiohttp.
"""
