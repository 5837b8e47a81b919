"""Child-process entry point: run the real kubectl handler once, as the Lambda would.

Usage: ``python kubectl_handler_driver.py EVENT_JSON`` with the environment set by
:class:`tests.support.kubectl_handler.KubectlHandlerRunner` (``REHEARSAL_HANDLER_DIR``: the
handler's folder; ``REHEARSAL_PATH``: the stand-ins first, then the system's PATH).

The handler's modules prepend the Lambda layer locations (``/opt/helm``, ``/opt/kubectl``,
``/opt/awscli``) to PATH when imported; here the layer's binaries sit behind the stand-ins
in ``REHEARSAL_PATH``, so PATH is set to that after the import. Exit 0 when the handler
returned, 1 with the exception text on stderr when it raised.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def main() -> int:
    event = json.loads(open(sys.argv[1]).read())
    sys.path.insert(0, os.environ["REHEARSAL_HANDLER_DIR"])
    import index  # the handler's own entry module (index.handler)

    os.environ["PATH"] = os.environ["REHEARSAL_PATH"]
    try:
        result = index.handler(event, None)
    except Exception as exc:  # noqa: BLE001 - the handler's failure is the result
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", errors="replace")
        print(f"HANDLER FAILED: {detail}", file=sys.stderr)
        traceback.print_exc()
        return 1
    print(f"HANDLER RESULT: {json.dumps(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
