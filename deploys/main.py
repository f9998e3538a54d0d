"""The pyinfra deploy file `hardening deploy` runs: each measure, in order, from the host's plan.

pyinfra executes this file once per host (CLI mode). The parent resolved every host once into a
plan (hardening.plan) and names the plan file in ``HARDENING_PLANS``; this file never resolves a
profile. The host is observed once (deploys/_observed.py) and every measure's deploy decides
from those observations.
"""

import importlib
import os
from pathlib import Path

from pyinfra import host

import hardening
from hardening.plan import read as read_plans

_HERE = Path(__file__).resolve().parent
# Installed from a wheel this directory is the package hardening.deploys; in a checkout, deploys.
_PACKAGE = "hardening.deploys" if _HERE.parent == Path(hardening.__file__).resolve().parent else "deploys"
_observed = importlib.import_module(f"{_PACKAGE}._observed")
_rollback = importlib.import_module(f"{_PACKAGE}._rollback")

plan = read_plans(os.environ["HARDENING_PLANS"])[host.name]
importlib.import_module(f"{_PACKAGE}._support").bound_connection()
obs = host.get_fact(_observed.Observed, commands=plan.commands)

_rollback.configure(plan.profile.deploy.confirm_timeout, plan.profile.deploy.run_allowance)
_modules = [importlib.import_module(f"{_PACKAGE}.{_name}") for _name in plan.measures]
# A measure whose change would lock people out refuses the host before ANY measure changes it.
_refusals = [r for m in _modules if hasattr(m, "preflight") and (r := m.preflight(plan.profile, obs))]
if _refusals:
    _support = importlib.import_module(f"{_PACKAGE}._support")
    _support.refuse(" // ".join(_refusals) + " (nothing was changed on this host)")
    _modules = []
# The operator's consent, from the command line through the plan (hardening deploy --format-data-disk).
_options = {"encryption": {"format_devices": plan.format_devices}}
for _module in _modules:
    _module.apply(plan.profile, obs, **_options.get(_module.__name__.rsplit(".", 1)[-1], {}))
# The watchdogs armed in this run count their confirmation window from here (deploys/_rollback.py).
_rollback.finish()
# What a person must settle (accounts, files the tool does not own) fails the host at the end,
# after every measure that could still be applied safely.
importlib.import_module(f"{_PACKAGE}._support").refuse_deferred()
