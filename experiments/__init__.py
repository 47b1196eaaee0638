"""The paper's sample-quality / speed tables as experiments: a driver on top of pfgm, not part of it.

Not installed with the package (setup.cfg packages only pfgm*); tools/reproduce.py is its CLI and puts
the repository root on sys.path. One call per table, resumable:

  tables   the tables and their rows: models, configs, samplers, the paper's numbers (pure data)
  configs  a row's config, the command that trains it, the checkpoint it evaluates, the budget check
  metrics  the quality numbers of a row's samples (toy: sliced W / MMD; digits-FID; Inception FID / IS)
  runner   run_table: train what is missing (cpu scale), sample, measure, cache per row, write outputs
  report   the Markdown / CSV / LaTeX tables, their headers, the --report page
  plots    quality vs NFE, vs steps, vs training step; sample grids
"""
