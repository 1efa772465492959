"""The Loss Odyssey benchmark (``seglosses bench``), in layers; each imports only the ones before it:

1. data -- :mod:`.data` (cases, datasets, splits), :mod:`.data_layouts` (loading from disk),
   :mod:`.synthetic` (built-in tasks), :mod:`.presets` (loss configurations), :mod:`.plotting`;
2. one run -- :mod:`.model`, :mod:`.train`, :mod:`.evaluate`, :mod:`.job` (a run as a pure
   function of its job description), :mod:`.plan` (fingerprint, timing probe, budget: the plan
   of a task's runs);
3. executors -- :mod:`.executors` (where runs execute: in order, threads, processes);
4. results -- :mod:`.store` (``results.sqlite``), :mod:`.results` (tables, run selection, CSV) and
   :mod:`.evidence` (seeds in the ranking, seed stability, significance in plain words);
5. the driver :mod:`.runner` and the report :mod:`.report` (sections; with :mod:`.report_blocks`
   and :mod:`.report_figures`), independent of each other;
6. the command line -- :mod:`.cli`.

See ``docs/bench_layout.md``; ``tests/test_import_graph.py`` keeps the layers. Nothing is
imported here, so ``import seglosses.bench.store`` stays light.
"""
