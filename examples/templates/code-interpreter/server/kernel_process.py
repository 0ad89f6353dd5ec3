"""What every kernel does with its process: restart it, and end it with its whole process group."""
import os
import signal


class KernelProcess:
    """A kernel whose process is `self.proc` (started by `start()`, in a process group of its own), guarded by `self.mutex`."""

    def restart(self):
        self.shutdown()
        self.start()

    def shutdown(self):
        with self.mutex:
            if self.proc is not None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
                self.proc = None
