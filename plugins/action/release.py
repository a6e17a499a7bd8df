# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of redbutton.deploy.release: checksum a local src, upload only if needed.

With remote_src false and a src on the controller, the checksum is computed here (sha256 of an
archive's bytes, content digest of a directory, which is packed into a temporary tar). The
module is asked once without src: if the host's ledger has a release with those bytes (or that
content) it does all the work right away and nothing is transferred. Only otherwise is the
artifact copied to the remote temporary directory and the module called again to stage it (the
host verifies the checksum and computes the content digest while extracting, in the same pass:
an archive rebuilt from the same files is recognised there and is a no-op). Check mode never
transfers anything: the controller reads the archive itself and sends its content digest.

An http(s) URL in src goes to the module as it is: the host downloads it.

With a local connection and no become the host is the controller: the module is called once
with the controller path, as for remote_src, and nothing is hashed, validated or copied here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tarfile
import tempfile

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.redbutton.deploy.plugins.module_utils._archive import (
    DirectorySource,
    file_checksum,
    normalize_checksum,
    open_source,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._fetch import is_url
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import controller_identity
from ansible_collections.redbutton.deploy.plugins.plugin_utils._payload_cache import KeepsPayload


def _reset_owner(info):
    info.uid = info.gid = 0
    info.uname = info.gname = ''
    return info


def pack_directory(path, dest_dir):
    """Pack a directory into a gzip tar (members relative to the directory); return its path."""
    fd, archive = tempfile.mkstemp(prefix='redbutton-release-', suffix='.tar.gz', dir=dest_dir)
    os.close(fd)
    with tarfile.open(archive, 'w:gz', compresslevel=1) as tar:
        for name in sorted(os.listdir(path)):
            tar.add(os.path.join(path, name), arcname=name, recursive=True, filter=_reset_owner)
    return archive


class LocalArtifact(object):
    """The controller-side src: validated, checksummed, packed when it is a directory."""

    def __init__(self, path):
        self.path = path
        self.workdir = None
        self.upload = path
        self.checksum_of = 'archive'
        self.checksum = None
        self.source = None

    def prepare(self):
        """Checksum only: the cheap question a re-run needs answered."""
        self.source = open_source(self.path)
        if isinstance(self.source, DirectorySource):
            self.source.validate()  # the tree digest walks it anyway
            self.checksum = self.source.checksum()
            self.checksum_of = 'tree'
        else:
            self.checksum = file_checksum(self.path)
        return self

    def validate(self):
        """Refuse a malicious or damaged artifact on the controller and return its content digest:
        check mode only, where nothing is uploaded and the host could not see it (otherwise the
        host checks while extracting)."""
        if isinstance(self.source, DirectorySource):
            return self.checksum
        return self.source.scan()

    def pack(self):
        if self.checksum_of == 'tree' and self.upload == self.path:
            self.workdir = tempfile.mkdtemp(prefix='redbutton-release-')
            self.upload = pack_directory(self.path, self.workdir)
        return self.upload

    def cleanup(self):
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class ActionModule(KeepsPayload, ActionBase):
    """Subclassable: a subclass names its module in MODULE (same upload and probe protocol). Its module
    calls keep their payload between runs (KeepsPayload, plugins/plugin_utils/_payload_cache.py)."""

    TRANSFERS_FILES = False  # only when the host lacks the content; the tmp dir is made then
    MODULE = 'redbutton.deploy.release'

    def _stages(self, args):
        """Whether this call stages an artifact given on the controller."""
        return bool(args.get('src')) and not boolean(args.get('remote_src', False), strict=False) and not is_url(args['src'])

    def _upload_in_check_mode(self, args):  # pylint: disable=unused-argument
        """Whether this call needs the artifact on the host even in check mode (never, here)."""
        return False

    @staticmethod
    def _probe_defaults(args):
        if not args.get('state'):
            args['state'] = 'staged'  # the module's default with src; the probe carries no src

    def _module_args(self, task_vars):  # pylint: disable=unused-argument
        """The module's parameters, from the task's."""
        return dict(self._task.args)

    def _same_machine(self):
        """Whether the module runs on the controller as the same user (local connection, no
        become), so it can read a controller path itself: no probe, no upload, one call."""
        return self._connection.transport == 'local' and not self._connection.become

    def _find_src(self, src):
        """The controller path of src: where Ansible finds a file (the files/ of the roles and of the playbook's
        directory), else relative to the directory ansible-playbook runs in. The collection's playbooks live in the
        collection, so `-e redbutton_artifact=dist/app.tar.gz` means ./dist of the user's shell (or AWX's project)."""
        path = os.path.expanduser(src)
        try:
            return self._find_needle('files', path)
        except AnsibleError as exc:
            here = os.path.abspath(path)
            if os.path.exists(here):
                return here
            raise AnsibleActionFail('src %s was not found on the controller (not in %s, where ansible-playbook runs, nor: %s); '
                                    'give an existing archive or directory, or remote_src: true for a path on the target host'
                                    % (src, os.getcwd(), to_text(exc)))

    @staticmethod
    def _validate(artifact):
        try:
            return artifact.validate()
        except RedbuttonError as exc:
            raise AnsibleActionFail(to_text(exc))

    def run(self, tmp=None, task_vars=None):
        if task_vars is None:
            task_vars = {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._module_args(task_vars)
        if args.get('lock_owner') and '_controller' not in args:
            # The run that takes the lock: this worker's parent is the ansible-playbook process, so
            # the next run can tell whether the holder is still alive when it runs from this machine.
            args['_controller'] = controller_identity(os.getppid())
        src = args.get('src')
        if not self._stages(args):
            # Nothing to stage from the controller (no src, a path on the host, or an http(s) URL the host
            # downloads itself): nothing is looked up or copied here.
            result.update(self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars))
            return result

        artifact = None
        decrypted = None
        try:
            found = local = self._find_src(src)
            if os.path.isfile(local):
                real = self._loader.get_real_file(local, decrypt=True)
                if real != local:
                    decrypted = real  # a vault-encrypted archive: a temporary plain copy
                local = real
            if self._same_machine():
                # The host is the controller: the module reads src where it is, in one call, and
                # does what it does for remote_src (checksum, idempotence, checks while extracting).
                args.update(src=local, remote_src=True, _source=found)
                result.update(self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars))
                return result
            try:
                artifact = LocalArtifact(local).prepare()
                wanted = normalize_checksum(args.get('checksum'))
            except RedbuttonError as exc:
                raise AnsibleActionFail(to_text(exc))
            if wanted and wanted != artifact.checksum:
                raise AnsibleActionFail(
                    'checksum mismatch for src %s: expected %s, got %s; nothing was transferred. Check that the '
                    'artifact is the one you meant, or fix checksum' % (src, wanted, artifact.checksum))

            if self._task.check_mode:
                args['_content'] = self._validate(artifact)
            args.update(checksum=artifact.checksum, _checksum_of=artifact.checksum_of, _source=found, remote_src=True)
            self._probe_defaults(args)
            upload_anyway = self._task.check_mode and self._upload_in_check_mode(args)
            if upload_anyway:
                answer = {'needs_src': True}
            else:
                probe = dict(args, _probe=True)
                probe.pop('src', None)
                answer = self._execute_module(module_name=self.MODULE, module_args=probe, task_vars=task_vars)
                if answer.get('needs_content') and not answer.get('failed'):
                    # The id is staged from other bytes: the content digest, read here, tells a rebuilt
                    # artifact of the same files (a no-op) from other content (refused), without an upload.
                    args['_content'] = probe['_content'] = self._validate(artifact)
                    answer = self._execute_module(module_name=self.MODULE, module_args=probe, task_vars=task_vars)
            if answer.get('failed') or not answer.get('needs_src') or (self._task.check_mode and not upload_anyway):
                answer.pop('needs_src', None)
                answer.pop('needs_content', None)
                result.update(answer)
                return result

            # No listing here: the host checks every member while extracting, before the release
            # gets its real name, and reading the archive twice would cost more than it saves.
            if self._connection._shell.tmpdir is None:
                self._make_tmp_path()
            upload = artifact.pack()
            suffix = '.zip' if upload.lower().endswith('.zip') else '.tar'
            remote = self._connection._shell.join_path(self._connection._shell.tmpdir, 'release-source' + suffix)
            self._transfer_file(upload, remote)
            self._fixup_perms2((self._connection._shell.tmpdir, remote))
            args['src'] = remote
            result.update(self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars))
            return result
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=to_text(exc))
            return result
        finally:
            if artifact is not None:
                artifact.cleanup()
            if decrypted is not None:
                self._loader.cleanup_tmp_file(decrypted)
            self._remove_tmp_path(self._connection._shell.tmpdir)
