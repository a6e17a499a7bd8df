# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After toggle.yml: new_checkout on (on, 50%, previous), break_health flipped and reverted by itself."""

import json

ROOT = '/srv/sample'  # config.yml: redbutton_root


def feature_events(app, name):
    return [e for e in app.ledger()['events'] if e['event'] == 'feature' and e['name'] == name]


def test_app_reads_the_toggles_and_is_healthy(app):
    toggles = app.host.file('%s/shared/features.json' % ROOT)
    assert toggles.is_file and toggles.mode == 0o644
    assert json.loads(toggles.content_string) == {'new_checkout': 'on'}
    assert app.get('/features') == (200, 'new_checkout=on')
    app.assert_serves('v1')


def test_history_of_new_checkout(app):
    events = feature_events(app, 'new_checkout')
    assert [(e['from'], e['to']) for e in events] == [(None, 'on'), ('on', 50), (50, 'on')]
    assert events[2]['undoes'] == events[1]['seq'] and events[2]['reason'] == 'previous'
    assert len(set(e['run_id'] for e in events)) == 3, 'each run has its own id'


def test_bad_flip_was_reverted_by_its_own_run(app):
    events = feature_events(app, 'break_health')
    assert [(e['from'], e['to'], e.get('reason')) for e in events] == [(None, 'on', None), ('on', None, 'revert')]
    assert events[0]['run_id'] == events[1]['run_id'] and events[1]['undoes'] == events[0]['seq']


def test_state_and_lock(app):
    state = json.loads(app.host.file('%s/.redbutton/features.json' % ROOT).content_string)
    assert state['toggles']['new_checkout']['value'] == 'on' and 'break_health' not in state['toggles']
    app.assert_unlocked()
