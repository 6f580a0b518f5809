"""Measuring tools for batchrank: throughput against plain vLLM and transformers, engine profiles, memory, scale,
resume and dispatch costs. Each tool is a module run with `python -m batchrank.bench.TOOL --help`:

  throughput     batchrank against plain vLLM (at several call sizes) and transformers on the same synthetic pairs
  profile_step   where one engine step's time goes (matrix products, attention, other GPU work, GPU idle), MFU
  compare_runs   one job under several settings (executors, workers, batch invariance, a killed worker)
  memory_run     peak memory with documents longer than max_model_len
  engine_probe   one engine's clock split, and several engines on one GPU (processes or threads)
  prepare_cost   batchrank's own CPU work for one chunk (tokenize, write the part)
  scale_bench    validate and plan at scale (no model)
  resume_bench   the resume check and `batchrank status` over many parts
  dispatch_sim   the Ray executor's dispatch with fixed-speed scorers; a chunk's read cost; ray.wait's cost

The other modules are what the tools share, one concern each: environment (variables, versions, the device),
anchor_prompt (the model card's prompt), synthetic (MS MARCO-shaped pairs), tokens (token counts), models (random
models and the compute floor), memory (sampling a process tree and the GPU), processes (a measured subprocess),
agreement (score agreement and ranking drift) and formats (numbers in tables). Nothing in batchrank imports this
package; vLLM, torch and transformers are imported only where a tool runs them.
"""
