"""A stand-in worker process for event tests: commits events the way jobs do, on command.

Run as ``python -m tests.services.event_emitter USER_ID PROJECT_ID`` with the ``SAPARI_*``
settings of the fleet in the environment. It builds the real runtime (so the real event
bus), then reads commands from stdin:

    emit N INTERVAL   commit N JobProgress events, INTERVAL seconds apart; each payload
                      carries ``seq`` (counting on from the last one) and ``t`` (time.time()
                      just before the commit); then prints ``sent N``
    quit              close the runtime (flushing the bus) and exit

It prints ``ready`` once the runtime is built.
"""

from __future__ import annotations

import sys
import time

from sapari_server.db.engine import transaction
from sapari_server.events.log import record_event
from sapari_server.runtime import build_runtime
from sapari_server.settings import Settings


def main(user_id: str, project_id: str) -> None:
    rt = build_runtime(Settings())
    seq = 0
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            if cmd[0] == "quit":
                break
            count, interval = int(cmd[1]), float(cmd[2])
            for i in range(count):
                if i:
                    time.sleep(interval)
                with transaction(rt.sync_session) as s:
                    record_event(s, user_id=user_id, project_id=project_id, type="JobProgress",
                                 payload={"seq": seq, "t": time.time()})
                # After the commit, as every job does.
                rt.bus.notify(user_id)
                seq += 1
            print(f"sent {count}", flush=True)
    finally:
        rt.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
