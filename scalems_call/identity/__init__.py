"""What a call is: records, their encoding and their identity.

The record formats (:mod:`.records`), encoding arguments and results
(:mod:`.serialize`), SCALE-MS's names and formats (:mod:`.compat`) and its
``function_call_to_subprocess`` (:mod:`.batchtask`), references
to other calls' outputs (:mod:`.upstream`), resolving ``module:function``
(:mod:`.targets`), the code closure a call needs (:mod:`.closure`), calls
described for people (:mod:`.describe`) and the errors (:mod:`.errors`).

Imports: :mod:`scalems_store`. Imported by every other folder of
:mod:`scalems_call`.
"""
