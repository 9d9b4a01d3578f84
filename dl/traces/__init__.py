"""Per-node availability traces compiled to one jittable form (`Availability`).

Sources: STUNner (Berta et al., P2P 2014; `stunner`), FedScale (`fedscale`, via the npz written by
`scripts/convert_fedscale.py`) and synthetic models (`synthetic`). Query with `is_online`,
`next_transition`, `online_fraction`, `online_during`.
"""

from dl.traces.availability import (
    Availability,
    from_states,
    from_transitions,
    hourly_profile,
    is_online,
    next_transition,
    online_during,
    online_fraction,
    online_time_fraction,
    session_end,
)
from dl.traces.fedscale import build_fedscale, fedscale_profiles, load_behave, load_capacity
from dl.traces.stunner import (
    StunnerTrace,
    build_stunner,
    drop_short_sessions,
    load_stunner,
    parse_peersim_sessions,
    trace_hourly_profile,
    trace_online_fraction,
)
from dl.traces.synthetic import always_on, bernoulli, diurnal

__all__ = [
    "Availability",
    "StunnerTrace",
    "always_on",
    "bernoulli",
    "build_fedscale",
    "build_stunner",
    "diurnal",
    "drop_short_sessions",
    "fedscale_profiles",
    "from_states",
    "from_transitions",
    "hourly_profile",
    "is_online",
    "load_behave",
    "load_capacity",
    "load_stunner",
    "next_transition",
    "session_end",
    "online_during",
    "online_fraction",
    "online_time_fraction",
    "parse_peersim_sessions",
    "trace_hourly_profile",
    "trace_online_fraction",
]
