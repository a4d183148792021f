"""The preference baselines trained through TRL: DPO / ILF-DPO (dpo.py) and KTO (kto.py), on the runner that
gives them CUT's recipe, outputs and resume (trl_run.py)."""
