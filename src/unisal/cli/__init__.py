"""The ``unisal`` command line.

Importing it chooses OpenMP's wait policy (unless the user chose one) before any command
imports torch, and asks glibc to keep freed memory for reuse: see :mod:`unisal.threads`.
"""

from unisal.threads import configure_openmp, keep_freed_memory

configure_openmp()
keep_freed_memory()
