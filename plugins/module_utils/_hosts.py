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
import shlex
import shutil
import subprocess
import sys

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError


class ModuleHost(object):
    """The engine's host adapter inside a module."""

    def __init__(self, module):
        self.module = module
        self.warnings = []

    def run_command(self, args, **kwargs):
        """AnsibleModule.run_command, with whatever keywords the engine's callers pass."""
        kwargs['environ_update'] = kwargs.get('environ_update') or {}
        return self.module.run_command(args, **kwargs)

    def get_bin_path(self, name, required=False):
        return self.module.get_bin_path(name, required=required)

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

    def run_command(self, args, cwd=None, use_unsafe_shell=False, environ_update=None, expand_user_and_vars=True,
                    handle_exceptions=True):
        """AnsibleModule.run_command's semantics with subprocess: a string is split (no shell) unless
        use_unsafe_shell; ~ and $VARS are expanded unless expand_user_and_vars is false; a command that
        cannot start is a failed one (rc 127) unless handle_exceptions is false, then OSError propagates."""
        env = dict(os.environ)
        env.update(environ_update or {})
        if use_unsafe_shell:
            argv = ['/bin/sh', '-c', args if isinstance(args, str) else ' '.join(shlex.quote(a) for a in args)]
        else:
            argv = shlex.split(args) if isinstance(args, str) else list(args)
            if expand_user_and_vars:
                argv = [os.path.expanduser(os.path.expandvars(a)) for a in argv]
        try:
            proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, check=False)
        except OSError as exc:
            if not handle_exceptions:
                raise
            return 127, '', str(exc)
        return proc.returncode, proc.stdout.decode('utf-8', 'replace'), proc.stderr.decode('utf-8', 'replace')

    @staticmethod
    def get_bin_path(name, required=False):
        path = os.environ.get('PATH', '') + ':/sbin:/usr/sbin:/usr/local/sbin'
        found = shutil.which(name, path=path)
        if found is None and required:
            raise RedbuttonError('%s was not found on PATH (%s)' % (name, path))
        return found

    def http_get(self, url, timeout, validate_certs=True):
        import ssl
        import urllib.error
        import urllib.request
        context = None
        if not validate_certs:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        # The standard library's opener: this adapter serves the command left on each host, which runs
        # without Ansible (ModuleHost uses ansible.module_utils.urls.open_url).
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
        try:
            with opener.open(url, timeout=timeout) as response:
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
    message of a RedbuttonError (and the partial result it carries, if any). A relative root or
    file is refused first: it would land under whatever directory the module runs in."""
    for key, what in (('root', 'the application root, e.g. /srv/shop (redbutton_root)'), ('file', 'the file (redbutton_feature_file)')):
        value = module.params.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            module.fail_json(msg='%s %s is a relative path: give the absolute path of %s. Nothing was changed.' % (key, value, what))
    try:
        result = engine()
    except RedbuttonError as exc:
        details = dict(getattr(exc, 'result', None) or {})
        details.pop('msg', None)
        details.pop('failed', None)
        module.fail_json(msg=str(exc), **details)
    module.exit_json(**result)
