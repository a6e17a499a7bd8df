# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After the red button was pressed inside the container (`redbutton rollback --yes`, no
Ansible there): v1 serves, v2 is marked rolled_back, the ledger names who pressed it."""

import json

BUTTON = '/srv/sample/.redbutton/bin/redbutton'


def test_v1_serves_again(app):
    app.assert_serves('v1')


def test_ledger_records_the_on_host_rollback(app):
    ledger = app.ledger()
    assert ledger['current'] == 'v1'
    assert app.statuses() == {'v1': 'ok', 'v2': 'rolled_back'}
    who = 'root@%s' % app.host.check_output('hostname')
    switch = ledger['last_switch']
    assert (switch['from'], switch['to'], switch['reason'], switch['by']) == ('v2', 'v1', 'rollback', who)
    last = [event for event in ledger['events'] if event['event'] == 'activated'][-1]
    assert (last['release'], last['from'], last['by']) == ('v1', 'v2', who)


def test_the_command_is_installed_and_runs_without_ansible(app):
    command = app.host.file(BUTTON)
    assert command.is_file and command.mode == 0o755
    assert app.host.run('python3 -c "import ansible"').rc != 0, 'Ansible is installed in the container'
    status = json.loads(app.host.check_output('%s status --json', BUTTON))
    assert (status['current'], status['previous'], status['lock']) == ('v1', None, None)


def test_a_second_press_changes_nothing(app):
    """Right after a rollback the default target stays put: exit 0, nothing moved, nothing recorded."""
    before = app.ledger()
    answer = json.loads(app.host.check_output('%s rollback --yes --json', BUTTON))
    assert answer['exit'] == 0 and answer['moved'] is False and answer['current'] == 'v1'
    after = app.ledger()
    assert (after['current'], after['seq'], after['releases']) == ('v1', before['seq'], before['releases'])


def test_shared_data_survived(app):
    app.assert_shared_data_intact('v1')


def test_lock_released(app):
    app.assert_unlocked()
