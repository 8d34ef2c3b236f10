"""Kill and restart the parts of the running stack (scripts/stack) for the crash tests
(test_crash.py). Everything is read from the running processes, so these tests need only what every
HTTP test has (the libpq variables and PGI_BASE_URL):

- Postgres: the data directory (`SHOW data_directory`; the stack's is $STACK_DIR/pgdata), the
  postmaster's pid (first line of postmaster.pid), the binaries beside /proc/<pid>/exe. It is
  started again as scripts/stack starts it: `pg_ctl -D $STACK_DIR/pgdata -l $STACK_DIR/postgres.log
  -w start` as the data directory's owner, without RUST_BACKTRACE.
- PostgREST: its pid ($STACK_DIR/postgrest.pid) and, read from /proc before it is ever killed, its
  command line, environment (PGRST_DB_URI, PGRST_SERVER_PORT) and directory. It is started again
  with exactly those, detached (`nohup … &`, as the stack does), and its pid written back to
  postgrest.pid, so `scripts/stack down` stops it.
"""

import os
import pwd
import signal
import socket
import subprocess
import time

import psycopg
import requests

from conftest import BASE_URL


def _running(pid):
    """Whether the process exists and is not a zombie (a killed process waits for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _proc_list(pid, name):
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return [part.decode() for part in f.read().split(b"\0") if part]


def wait_until(predicate, timeout, what, every=0.05):
    """Poll `predicate` until it is true; fail with `what` after `timeout` seconds (a generous
    bound for a stuck stack, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s: {what}")
        time.sleep(every)


class Stack:
    def __init__(self):
        with psycopg.connect(autocommit=True) as conn:
            self.pgdata = os.path.realpath(conn.execute("SHOW data_directory").fetchone()[0])
        self.dir = os.path.dirname(self.pgdata)
        st = os.stat(self.pgdata)
        self.pg_uid = st.st_uid
        self.bindir = os.path.dirname(os.readlink(f"/proc/{self.postmaster_pid()}/exe"))
        pid = self.postgrest_pid()
        assert _running(pid), f"PostgREST (pid {pid} in {self.dir}/postgrest.pid) is not running"
        self.postgrest_cmd = _proc_list(pid, "cmdline")
        self.postgrest_env = dict(kv.split("=", 1) for kv in _proc_list(pid, "environ") if "=" in kv)
        self.postgrest_cwd = os.readlink(f"/proc/{pid}/cwd")

    # Postgres ------------------------------------------------------------------------------------
    def postmaster_pid(self):
        with open(f"{self.pgdata}/postmaster.pid") as f:
            return int(f.readline())

    def instance_pids(self):
        """The live processes of this server: a postmaster and its children run in the data
        directory (postgres chdirs there), as the data directory's owner."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}").st_uid == self.pg_uid and \
                        os.readlink(f"/proc/{entry}/cwd") == self.pgdata and _running(entry):
                    pids.append(int(entry))
            except OSError:
                continue  # exited meanwhile, or a zombie without a cwd
        return pids

    def postgres_alive(self):
        try:
            return self.postmaster_pid() in self.instance_pids()
        except FileNotFoundError:
            return False

    def kill_postgres(self):
        """kill -9 of the postmaster (the pid in postmaster.pid), then of every process of the
        server still alive, as a crash of the machine would do: nothing commits after this, and
        the restart need not wait for orphaned backends to notice their postmaster is gone.
        Returns the postmaster's pid."""
        postmaster = self.postmaster_pid()
        os.kill(postmaster, signal.SIGKILL)
        self._kill_leftovers()
        return postmaster

    def _kill_leftovers(self):
        def none_left():
            pids = self.instance_pids()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return not pids

        wait_until(none_left, 30, f"processes of {self.pgdata} survive SIGKILL: {self.instance_pids()}")

    def start_postgres(self):
        """scripts/stack's start: pg_ctl -w (crash recovery runs before it returns)."""
        try:
            old = self.postmaster_pid()
        except FileNotFoundError:
            old = None
        if old is not None and old not in self.instance_pids():
            # Until the killed postmaster is reaped: the new one would take the zombie's pid in
            # postmaster.pid for a server still running, and refuse to start.
            wait_until(lambda: not os.path.exists(f"/proc/{old}"), 60, f"the killed postmaster {old} is not reaped")
        cmd = [f"{self.bindir}/pg_ctl", "-D", self.pgdata, "-l", f"{self.dir}/postgres.log", "-w", "-t", "120", "start"]
        if os.getuid() == 0:
            cmd = ["runuser", "-u", pwd.getpwuid(self.pg_uid).pw_name, "--"] + cmd
        env = {k: v for k, v in os.environ.items() if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}
        r = subprocess.run(cmd, env=env, cwd="/", stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise AssertionError(f"pg_ctl start failed ({r.returncode}): {r.stdout}{r.stderr}\n"
                                 f"postgres.log ends with:\n{self._log_tail('postgres.log')}")

    # PostgREST -----------------------------------------------------------------------------------
    def postgrest_pid(self):
        with open(f"{self.dir}/postgrest.pid") as f:
            return int(f.read())

    def postgrest_alive(self):
        try:
            return _running(self.postgrest_pid())
        except FileNotFoundError:
            return False

    def kill_postgrest(self):
        pid = self.postgrest_pid()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _running(pid), 30, f"the killed PostgREST {pid} is still there")
        return pid

    def start_postgrest(self):
        """As scripts/stack: nohup postgrest postgrest.conf &, then its pid into postgrest.pid and
        a wait for its port. The log is appended to (the stack truncates it), so the killed one's
        lines stay readable."""
        r = subprocess.run(
            ["bash", "-c", 'nohup "$@" >>"$PGI_LOG" 2>&1 </dev/null & echo $!', "start", *self.postgrest_cmd],
            env={**self.postgrest_env, "PGI_LOG": f"{self.dir}/postgrest.log"}, cwd=self.postgrest_cwd,
            capture_output=True, text=True, check=True, timeout=30)
        pid = int(r.stdout)
        with open(f"{self.dir}/postgrest.pid", "w") as f:
            f.write(f"{pid}\n")
        port = int(self.postgrest_env.get("PGRST_SERVER_PORT", 0))
        if port:
            wait_until(lambda: _port_open(port) or not _running(pid), 30, f"PostgREST never listened on {port}")
            assert _running(pid), f"PostgREST exited:\n{self._log_tail('postgrest.log')}"
        return pid

    # The whole chain ------------------------------------------------------------------------------
    def wait_http(self, project, timeout=120):
        """Until an authenticated request through nginx → PostgREST → Postgres answers 200."""
        last = []

        def answers():
            try:
                r = requests.get(f"{BASE_URL}/api/projects/{project['id']}/",
                                 headers={"Authorization": f"Bearer {project['key']}"}, timeout=10)
            except requests.RequestException as e:
                last[:] = [repr(e)]
                return False
            last[:] = [r.status_code, r.text[:300]]
            return r.status_code == 200

        try:
            wait_until(answers, timeout, "HTTP does not answer 200", every=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}; last answer {last}; postgrest.log:\n{self._log_tail('postgrest.log')}") from None

    def ensure_healthy(self, project):
        """Start whatever a test killed (also after a failure), then wait for HTTP."""
        if not self.postgres_alive():
            self._kill_leftovers()
            self.start_postgres()
        if not self.postgrest_alive():
            self.start_postgrest()
        self.wait_http(project)

    def _log_tail(self, name, n=3000):
        try:
            with open(f"{self.dir}/{name}", errors="replace") as f:
                return f.read()[-n:]
        except OSError as e:
            return repr(e)


def _port_open(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0
