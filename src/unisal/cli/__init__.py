"""The ``unisal`` command line.

Importing it asks OpenMP to wait passively (unless the user chose a policy) before any command
imports torch: see :mod:`unisal.threads`.
"""

from unisal.threads import passive_openmp

passive_openmp()
