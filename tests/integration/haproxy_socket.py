# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An HAProxy admin socket for the integration tests on localhost (no HAProxy installed there).

It answers the runtime API commands that community.general.haproxy and
redbutton.deploy.haproxy_info send (show info, show stat, get weight, set server ... state drain,
disable server, enable server), one command line per connection as HAProxy does, keeps each
server's admin state (READY, DRAIN, MAINT), and records every command with what the host served
at that moment, so a test can tell whether the drain came before the switch and the enable after
the checks. The real HAProxy is the Molecule scenario's (extensions/molecule/fleet).
"""

import socket
import threading

HEADER = ('# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,'
          'status,weight,act,bck,addr,')


class FakeHAProxy(object):

    def __init__(self, path, servers, served, backend='app', sessions=0):
        """servers: names in the backend; served(): what the host serves now (recorded with each command);
        sessions: current sessions every server reports (they never end when > 0)."""
        self.path = path
        self.backend = backend
        self.admin = dict((name, 'READY') for name in servers)
        self.served = served
        self.sessions = sessions
        self.log = []   # [(command, served)]
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve)
        self.thread.daemon = True
        self.thread.start()

    def status(self, name):
        return {'READY': 'UP', 'DRAIN': 'DRAIN', 'MAINT': 'MAINT'}[self.admin[name]]

    def changes(self):
        """The commands that change a server, in order, each with what the host served then."""
        return [(cmd, served) for cmd, served in self.log if not cmd.startswith(('show ', 'get '))]

    def _stat(self):
        rows = [HEADER, 'www,FRONTEND,,,0,0,100,0,0,0,0,0,0,,,,,OPEN,,,,,']
        for name in sorted(self.admin):
            rows.append('%s,%s,0,0,%d,0,,0,0,0,,0,,0,0,0,0,%s,1,1,0,127.0.0.1:8080,'
                        % (self.backend, name, self.sessions if self.admin[name] != 'MAINT' else 0, self.status(name)))
        rows.append('%s,BACKEND,0,0,0,0,100,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,' % self.backend)
        return '\n'.join(rows) + '\n\n'

    def _one(self, command):
        words = command.split()
        if command == 'show info':
            return 'Name: HAProxy\nVersion: 2.6.12-1+deb12u1\n'
        if command == 'show stat':
            return self._stat()
        target = words[-1] if words[:2] in (['disable', 'server'], ['enable', 'server'], ['get', 'weight']) else \
            (words[2] if words[:2] == ['set', 'server'] else None)
        if target is None or '/' not in target:
            return 'Unknown command.\n'
        backend, name = target.split('/', 1)
        if backend != self.backend or name not in self.admin:
            return 'No such server.\n'
        if words[0] == 'get':
            return '1 (initial 1)\n'
        if words[0] == 'disable':
            self.admin[name] = 'MAINT'
        elif words[0] == 'enable':
            self.admin[name] = 'READY'
        elif words[3:] == ['state', 'drain']:
            self.admin[name] = 'DRAIN'
        else:
            return 'Unknown command.\n'
        return '\n'

    def _serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile('rb').readline().decode('ascii').strip()
                answers = []
                with self.lock:
                    for command in (part.strip() for part in line.split(';')):
                        self.log.append((command, self.served()))
                        answers.append(self._one(command))
                conn.sendall(''.join(answers).encode('utf-8'))

    def close(self):
        self.sock.close()
