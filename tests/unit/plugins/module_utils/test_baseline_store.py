# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Baseline capture / compare / remove: the file on disk, idempotence, check and diff
mode, comparisons of trees and databases, and the failure report."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sqlite3
import stat

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils import _common
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._baseline import Baseline, baseline_path


def write(path, data=b'x'):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as handle:
        handle.write(data)


def run_sql(path, statement):
    connection = sqlite3.connect(path)
    connection.execute(statement)
    connection.commit()
    connection.close()


@pytest.fixture
def app(tmp_path):
    """<root> with releases/v1, current -> releases/v1, shared/ with uploads and a database."""
    root = str(tmp_path / 'app')
    release = os.path.join(root, 'releases', 'v1')
    write(os.path.join(release, 'app.py'), b'print("v1")\n')
    write(os.path.join(release, 'lib', 'util.py'), b'x = 1\n')
    write(os.path.join(release, 'var', 'log', 'app.log'), b'boot\n')
    write(os.path.join(root, 'shared', 'uploads', 'a.png'), b'PNG')
    os.symlink('../../shared/uploads', os.path.join(release, 'uploads'))
    os.symlink('releases/v1', os.path.join(root, 'current'))
    database = os.path.join(root, 'shared', 'app.db')
    run_sql(database, 'CREATE TABLE orders (id INTEGER PRIMARY KEY)')
    run_sql(database, 'INSERT INTO orders VALUES (1), (2), (3)')
    return root


def probes_for(root):
    return [
        {'name': 'release', 'path': os.path.join(root, 'current'), 'exclude': ['var/log']},
        {'name': 'uploads', 'path': os.path.join(root, 'shared', 'uploads'), 'compare': 'no_loss'},
        {'name': 'orders', 'sql': 'SELECT count(*) FROM orders', 'engine': 'sqlite',
         'database': os.path.join(root, 'shared', 'app.db')},
    ]


def capture(root, name='before-v2', probes=None, **kwargs):
    return Baseline(root, name, **kwargs).capture(probes or probes_for(root))


def compare(root, name='before-v2', probes=None, **kwargs):
    return Baseline(root, name, **kwargs).compare(probes)


def stored(root, name='before-v2'):
    with open(baseline_path(root, name)) as handle:
        return json.load(handle)


def by_probe(result):
    return dict((d['probe'], d) for d in result['differences'])


def test_capture_writes_the_baseline_file(app):
    result = capture(app)
    path = os.path.join(app, '.redbutton', 'baselines', 'before-v2.json')
    assert result['changed'] is True and result['path'] == path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    document = stored(app)
    assert document['schema'] == 1 and document['name'] == 'before-v2'
    assert [p['name'] for p in document['probes']] == ['release', 'uploads', 'orders']
    release = document['probes'][0]['result']
    assert release['link'] == 'releases/v1'
    assert release['files']['uploads'] == {'type': 'link', 'target': '../../shared/uploads'}
    assert 'var/log/app.log' not in release['files'] and 'app.py' in release['files']
    assert document['probes'][2]['result'] == {'value': 3}
    # the return value summarises trees instead of listing every file
    returned = result['baseline']['probes'][0]['result']
    assert 'files' not in returned and returned['count'] == release['count']


def test_capture_again_unchanged_keeps_the_file(app):
    first = capture(app)
    before = os.stat(first['path'])
    second = capture(app)
    assert second['changed'] is False
    assert second['captured_at'] == first['captured_at']
    after = os.stat(first['path'])
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_capture_again_after_a_change_rewrites(app):
    capture(app)
    run_sql(os.path.join(app, 'shared', 'app.db'), 'INSERT INTO orders VALUES (4)')
    assert capture(app)['changed'] is True
    assert stored(app)['probes'][2]['result'] == {'value': 4}


def test_check_mode_writes_nothing(app):
    result = capture(app, check_mode=True)
    assert result['changed'] is True
    assert not os.path.exists(result['path'])
    assert not os.path.exists(os.path.join(app, '.redbutton', 'baselines')) or not os.listdir(os.path.join(app, '.redbutton', 'baselines'))
    capture(app)
    run_sql(os.path.join(app, 'shared', 'app.db'), 'DELETE FROM orders')
    content = open(result['path'], 'rb').read()
    again = capture(app, check_mode=True)
    assert again['changed'] is True
    assert open(result['path'], 'rb').read() == content


def test_diff_mode_shows_before_and_after(app):
    first = capture(app, diff=True)
    assert first['diff']['before'] == ''
    assert 'probe orders' in first['diff']['after'] and 'value: 3' in first['diff']['after']
    write(os.path.join(app, 'current', 'lib', 'util.py'), b'x = 2\n')
    second = capture(app, diff=True)
    before, after = second['diff']['before'], second['diff']['after']
    assert before != after
    assert [line for line in before.splitlines() if 'lib/util.py' in line] != [line for line in after.splitlines() if 'lib/util.py' in line]
    assert 'cache' not in after
    assert 'diff' not in capture(app)


def test_failed_write_leaves_the_old_baseline(app, monkeypatch):
    capture(app)
    content = open(baseline_path(app, 'before-v2'), 'rb').read()
    run_sql(os.path.join(app, 'shared', 'app.db'), 'DELETE FROM orders')

    def broken_fsync(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(_common.os, 'fsync', broken_fsync)
    with pytest.raises(OSError):
        capture(app)
    monkeypatch.undo()
    assert open(baseline_path(app, 'before-v2'), 'rb').read() == content
    assert os.listdir(os.path.join(app, '.redbutton', 'baselines')) == ['before-v2.json']


def test_a_probe_that_fails_at_capture_writes_nothing(app):
    probes = probes_for(app) + [{'name': 'gone', 'sql': 'SELECT 1', 'engine': 'sqlite', 'database': '/nonexistent/x.db'}]
    with pytest.raises(RedbuttonError) as info:
        capture(app, probes=probes)
    assert "probe 'gone'" in str(info.value) and 'Nothing was written' in str(info.value)
    assert not os.path.exists(baseline_path(app, 'before-v2'))


@pytest.mark.parametrize('name', ['../evil', '', 'a/b', '.hidden'])
def test_invalid_names_are_refused(app, name):
    with pytest.raises(RedbuttonError) as info:
        capture(app, name=name)
    assert 'baseline id' in str(info.value)
    assert not os.path.exists(os.path.join(app, '.redbutton'))


def test_duplicate_and_empty_probe_lists_are_refused(app):
    with pytest.raises(RedbuttonError) as info:
        capture(app, probes=[{'name': 'a', 'path': app}, {'name': 'a', 'path': app}])
    assert "'a' is used twice" in str(info.value)
    with pytest.raises(RedbuttonError) as info:
        Baseline(app, 'x').capture([])
    assert 'give at least one probe' in str(info.value)


def test_missing_root_is_refused(tmp_path):
    with pytest.raises(RedbuttonError) as info:
        capture(str(tmp_path / 'nope'), probes=[{'name': 'a', 'path': '/etc/hostname'}])
    assert 'does not exist' in str(info.value)
    assert not os.path.exists(str(tmp_path / 'nope'))


def test_missing_baseline_names_the_file_and_the_fix(app):
    with pytest.raises(RedbuttonError) as info:
        compare(app, name='never')
    message = str(info.value)
    assert baseline_path(app, 'never') in message and 'state=captured' in message


def test_corrupt_baseline_is_reported_and_left_alone(app):
    path = baseline_path(app, 'before-v2')
    write(path, b'{"schema": 1, "probes": [')
    for action in (compare, capture):
        with pytest.raises(RedbuttonError) as info:
            action(app)
        assert 'corrupt' in str(info.value)
    assert open(path, 'rb').read() == b'{"schema": 1, "probes": ['


def test_unknown_schema_is_refused(app):
    write(baseline_path(app, 'before-v2'), b'{"schema": 9, "probes": []}')
    with pytest.raises(RedbuttonError) as info:
        compare(app)
    assert 'unknown format' in str(info.value)


def test_compare_unchanged_host_matches(app):
    capture(app)
    result = compare(app)
    assert result['differences'] == [] and result['changed'] is False
    assert 'matches' in result['msg']
    assert result['found']['orders'] == {'value': 3}


def test_compare_reports_tampered_files_with_a_readable_report(app):
    capture(app)
    current = os.path.join(app, 'current')
    write(os.path.join(current, 'app.py'), b'print("hacked")\n')
    os.chmod(os.path.join(current, 'lib', 'util.py'), 0o666)
    os.unlink(os.path.join(current, 'uploads'))
    os.symlink('/tmp', os.path.join(current, 'uploads'))
    write(os.path.join(current, 'lib', 'extra.py'))
    write(os.path.join(current, 'var', 'log', 'more.log'))     # excluded: not a difference
    result = compare(app)
    assert [d['probe'] for d in result['differences']] == ['release']
    diff = result['differences'][0]
    assert diff['kind'] == 'path' and diff['added'] == ['lib/extra.py'] and diff['removed'] == []
    changed = dict((c['item'], c['attributes']) for c in diff['changed'])
    assert changed == {'app.py': ['sha256', 'size'], 'lib/util.py': ['mode'], 'uploads': ['target']}
    report = result['msg']
    assert "probe 'release'" in report and '1 of 3 probe(s) differ' in report
    assert 'added:   lib/extra.py' in report
    assert 'app.py: sha256' in report and 'lib/util.py: mode 0644 -> 0666' in report
    assert "uploads: target '../../shared/uploads' -> '/tmp'" in report


def test_compare_detects_a_switched_current_link(app):
    capture(app)
    release2 = os.path.join(app, 'releases', 'v2')
    os.makedirs(release2)
    os.unlink(os.path.join(app, 'current'))
    os.symlink('releases/v2', os.path.join(app, 'current'))
    diff = by_probe(compare(app))['release']
    assert {'item': '.', 'attributes': ['link'], 'expected': {'link': 'releases/v1'},
            'found': {'link': 'releases/v2'}} in diff['changed']
    assert 'app.py' in diff['removed']


def test_compare_detects_a_deleted_row(app):
    capture(app)
    run_sql(os.path.join(app, 'shared', 'app.db'), 'DELETE FROM orders WHERE id = 2')
    result = compare(app)
    diff = by_probe(result)['orders']
    assert diff['expected'] == {'value': 3} and diff['found'] == {'value': 2}
    assert "probe 'orders'" in result['msg'] and 'value expected 3, found 2' in result['msg']


def test_no_loss_tree_allows_new_uploads_but_not_lost_ones(app):
    capture(app)
    uploads = os.path.join(app, 'shared', 'uploads')
    write(os.path.join(uploads, 'b.png'), b'new')
    assert compare(app)['differences'] == []
    os.unlink(os.path.join(uploads, 'a.png'))
    diff = by_probe(compare(app))['uploads']
    assert diff['removed'] == ['a.png'] and diff['added'] == []


def test_missing_tree_is_a_difference(app):
    capture(app)
    os.rename(os.path.join(app, 'shared', 'uploads'), os.path.join(app, 'shared', 'moved'))
    result = compare(app)
    assert by_probe(result)['uploads']['removed'] == ['.', 'a.png']
    assert 'expected present, found absent' in result['msg']


def test_unmeasurable_probe_is_a_difference_not_a_crash(app):
    capture(app)
    os.unlink(os.path.join(app, 'shared', 'app.db'))
    result = compare(app)
    diff = by_probe(result)['orders']
    assert 'does not exist' in diff['found']['error']
    assert 'could not be measured' in result['msg']


def test_compare_probes_can_exclude_after_the_fact(app):
    capture(app)
    write(os.path.join(app, 'current', 'cache.tmp'))
    assert by_probe(compare(app))['release']['added'] == ['cache.tmp']
    result = compare(app, probes=[{'name': 'release', 'exclude': ['var/log', '*.tmp']}])
    assert result['differences'] == []
    # the new glob filters the recorded side too: excluding a recorded file is not a loss
    result = compare(app, probes=[{'name': 'release', 'exclude': ['var/log', '*.tmp', 'lib']}])
    assert result['differences'] == []


def test_compare_probes_cannot_add_or_redirect(app):
    capture(app)
    with pytest.raises(RedbuttonError) as info:
        compare(app, probes=[{'name': 'new', 'path': app}])
    assert "probe 'new' is not in baseline 'before-v2'" in str(info.value)
    assert 'recorded: orders, release, uploads' in str(info.value)
    with pytest.raises(RedbuttonError) as info:
        compare(app, probes=[{'name': 'orders', 'sql': 'SELECT 3', 'engine': 'sqlite', 'database': os.path.join(app, 'shared', 'app.db')}])
    assert 'sql differs from the baseline' in str(info.value)


def age_baseline(root, seconds=10, name='before-v2'):
    """Move captured_at_ns forward, as if the capture happened `seconds` later (see the racy rule)."""
    path = baseline_path(root, name)
    document = stored(root, name)
    document['captured_at_ns'] += seconds * 10 ** 9
    _common.atomic_write_json(path, document)
    return document


def corrupt_recorded_hash(root, rel, name='before-v2'):
    document = stored(root, name)
    document['probes'][0]['result']['files'][rel]['sha256'] = '0' * 64
    _common.atomic_write_json(baseline_path(root, name), document)


def test_verify_content_auto_trusts_unchanged_inodes_and_always_reads_again(app):
    capture(app)
    age_baseline(app)
    # Pretend the disk silently changed app.py: the recorded hash no longer matches the
    # content while the inode metadata is untouched.
    corrupt_recorded_hash(app, 'app.py')
    assert compare(app)['differences'] == []
    diff = by_probe(compare(app, verify_content='always'))['release']
    assert [c['item'] for c in diff['changed']] == ['app.py']


def test_verify_content_auto_still_reads_recently_changed_files(app):
    capture(app)
    corrupt_recorded_hash(app, 'app.py')      # capture just happened: everything is "racy"
    diff = by_probe(compare(app))['release']
    assert [c['item'] for c in diff['changed']] == ['app.py']


def test_remove(app):
    capture(app)
    result = Baseline(app, 'before-v2', check_mode=True).remove()
    assert result['changed'] is True and os.path.exists(result['path'])
    result = Baseline(app, 'before-v2', diff=True).remove()
    assert result['changed'] is True and not os.path.exists(result['path'])
    assert 'probe orders' in result['diff']['before']
    assert Baseline(app, 'before-v2').remove()['changed'] is False


def test_capture_reuses_hashes_of_an_earlier_baseline_of_the_same_tree(app):
    capture(app, name='before-v2')
    age_baseline(app, name='before-v2')
    corrupt_recorded_hash(app, 'app.py', name='before-v2')   # marks what was reused
    capture(app, name='before-v3')
    reused = stored(app, 'before-v3')['probes'][0]['result']['files']
    assert reused['app.py']['sha256'] == '0' * 64
    capture(app, name='before-v4', verify_content='always')
    fresh = stored(app, 'before-v4')['probes'][0]['result']['files']
    assert fresh['app.py']['sha256'] != '0' * 64


def test_capture_ignores_unreadable_earlier_baselines(app):
    write(baseline_path(app, 'broken'), b'{not json')
    result = capture(app)
    assert result['changed'] is True and stored(app)['probes'][2]['result'] == {'value': 3}
    assert open(baseline_path(app, 'broken'), 'rb').read() == b'{not json'
