# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After the red button and a rollout of v2 again through Ansible: v2 serves, both releases
ok, the on-host rollback is in the switch history between the playbook rollouts."""


def test_v2_serves_again(app):
    app.assert_serves('v2')


def test_ledger_after_rolling_out_again(app):
    ledger = app.ledger()
    assert ledger['current'] == 'v2'
    assert app.statuses() == {'v1': 'ok', 'v2': 'ok'}
    switch = ledger['last_switch']
    assert (switch['from'], switch['to'], switch['reason']) == ('v1', 'v2', 'rollout')


def test_switch_history_includes_the_on_host_rollback(app):
    switches = [(e.get('from'), e['release'], e['reason']) for e in app.ledger()['events'] if e['event'] == 'activated']
    assert switches == [(None, 'v1', 'rollout'), ('v1', 'v2', 'rollout'), ('v2', 'v1', 'rollback'), ('v1', 'v2', 'rollout'),
                        ('v2', 'v1', 'rollback'), ('v1', 'v2', 'rollout')]
    on_host = [e for e in app.ledger()['events'] if e['event'] == 'activated'][4]
    assert on_host['by'] == 'root@%s' % app.host.check_output('hostname')


def test_shared_data_survived(app):
    app.assert_shared_data_intact('v2')


def test_lock_released(app):
    app.assert_unlocked()
