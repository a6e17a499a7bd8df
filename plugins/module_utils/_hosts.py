# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the engine reaches the host it runs on: commands, HTTP, warnings.

ModuleHost wraps an AnsibleModule (run_command, ansible.module_utils.urls for HTTP, warn);
LocalHost does the same with the standard library alone, for the command left on each host
(no Ansible there). run_module() is the one main() of every module of the collection.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import ssl
import subprocess
import sys

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError


class ModuleHost(object):
    """The engine's host adapter inside a module."""

    def __init__(self, module):
        self.module = module
        self.warnings = []

    def run_command(self, args, cwd=None, use_unsafe_shell=False, environ_update=None):
        return self.module.run_command(args, cwd=cwd, use_unsafe_shell=use_unsafe_shell,
                                       environ_update=environ_update or {})

    def http_get(self, url, timeout, validate_certs=True):
        from ansible.module_utils.urls import open_url
        try:
            response = open_url(url, timeout=timeout, validate_certs=validate_certs, follow_redirects='safe')
            return response.getcode(), response.read().decode('utf-8', 'replace')
        except Exception as exc:  # pylint: disable=broad-except
            code = getattr(exc, 'code', None)
            if code is not None:
                body = exc.read().decode('utf-8', 'replace') if hasattr(exc, 'read') else ''
                return int(code), body
            return None, str(getattr(exc, 'reason', exc))

    def warn(self, msg):
        self.warnings.append(msg)
        self.module.warn(msg)


class LocalHost(object):
    """The engine's host adapter without Ansible (standard library only)."""

    def __init__(self, out=None):
        self.out = out or sys.stderr
        self.warnings = []

    def run_command(self, args, cwd=None, use_unsafe_shell=False, environ_update=None):
        env = dict(os.environ)
        env.update(environ_update or {})
        if use_unsafe_shell:
            args = ['/bin/sh', '-c', args]
        proc = subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False)
        return proc.returncode, proc.stdout.decode('utf-8', 'replace'), proc.stderr.decode('utf-8', 'replace')

    def http_get(self, url, timeout, validate_certs=True):
        import urllib.error
        import urllib.request
        context = None
        if not validate_certs:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
                return response.status, response.read().decode('utf-8', 'replace')
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode('utf-8', 'replace')
        except (urllib.error.URLError, OSError) as exc:
            return None, str(getattr(exc, 'reason', exc))

    def warn(self, msg):
        self.warnings.append(msg)
        self.out.write('warning: %s\n' % msg)


def run_module(module, engine):
    """The main() of every module: run engine() and exit with its result, or fail with the
    message of a RedbuttonError (and the partial result it carries, if any)."""
    try:
        result = engine()
    except RedbuttonError as exc:
        details = dict(getattr(exc, 'result', None) or {})
        details.pop('msg', None)
        details.pop('failed', None)
        module.fail_json(msg=str(exc), **details)
    module.exit_json(**result)
