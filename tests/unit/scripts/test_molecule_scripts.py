# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shell scripts behind `make molecule`: what they do with bad input and odd machines.

They run for real, with stand-ins on PATH for the system tools (dpkg-query, apt-get, id)
where the real ones would install packages or depend on who runs the test.
"""
import os
import subprocess
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCRIPTS = os.path.join(REPO, 'scripts')


def run(script, *args, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([os.path.join(SCRIPTS, script)] + list(args), env=full_env,
                          capture_output=True, text=True, timeout=60, check=False)


def write(path, text, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    path.chmod(mode)


# --- build-image.sh: which Debian mirror it bootstraps from ---------------------------

def mirror(tmp_path, **env):
    result = run('build-image.sh', '--print-mirror', env=dict({'APT_ETC': str(tmp_path)}, **env))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_mirror_from_one_line_sources_with_options(tmp_path):
    write(tmp_path / 'sources.list', '''\
        # deb http://commented.example/debian bookworm main
        deb-src http://src.example/debian bookworm main
        deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm main
        ''')
    assert mirror(tmp_path) == 'http://mirror.example/debian'


def test_mirror_skips_other_suites_and_disabled_deb822_stanzas(tmp_path):
    write(tmp_path / 'sources.list.d' / 'a.list', 'deb http://security.example/debian-security bookworm-security main\n')
    write(tmp_path / 'sources.list.d' / 'b.sources', '''\
        Types: deb
        URIs: http://disabled.example/debian
        Suites: bookworm
        Enabled: no

        Types: deb-src
        URIs: http://src.example/debian
        Suites: bookworm

        Types: deb
        URIs: http://snapshot-style.example/debian
        Suites: bookworm bookworm-updates
        Components: main''')  # the last stanza has no blank line after it
    assert mirror(tmp_path) == 'http://snapshot-style.example/debian'


def test_mirror_ignores_files_apt_ignores(tmp_path):
    write(tmp_path / 'sources.list.d' / 'old.list.disabled', 'deb http://disabled.example/debian bookworm main\n')
    write(tmp_path / 'sources.list.d' / 'x.sources', 'Types: deb\nURIs: http://used.example/debian\nSuites: bookworm\n')
    assert mirror(tmp_path) == 'http://used.example/debian'


def test_mirror_defaults_to_deb_debian_org(tmp_path):
    assert mirror(tmp_path) == 'http://deb.debian.org/debian'


def test_mirror_override(tmp_path):
    write(tmp_path / 'sources.list', 'deb http://mirror.example/debian bookworm main\n')
    assert mirror(tmp_path, REDBUTTON_DEBIAN_MIRROR='http://override.example/debian') == 'http://override.example/debian'


def test_build_image_rejects_unknown_arguments():
    result = run('build-image.sh', '--rebuild')
    assert result.returncode == 2
    assert "unknown argument '--rebuild'" in result.stderr


# --- system-deps.sh: installs what is missing, or says how --------------------------

@pytest.fixture
def fake_system(tmp_path):
    """PATH stand-ins: dpkg-query knows the packages in $INSTALLED, apt-get logs its calls."""
    bin_dir = tmp_path / 'bin'
    write(bin_dir / 'dpkg-query', '''\
        #!/bin/sh
        pkg=$(eval echo \\${$#})
        case " $INSTALLED " in *" $pkg "*) printf installed ;; *) exit 1 ;; esac
        ''', 0o755)
    write(bin_dir / 'apt-get', '#!/bin/sh\necho "$*" >>"$APT_LOG"\n', 0o755)
    write(bin_dir / 'id', '#!/bin/sh\necho "$FAKE_UID"\n', 0o755)
    log = tmp_path / 'apt.log'
    base = {'PATH': '%s:%s' % (bin_dir, os.environ['PATH']), 'APT_LOG': str(log)}
    return base, log


ALL = 'podman runc conmon slirp4netns uidmap fuse-overlayfs debootstrap debian-archive-keyring postgresql postgresql-client shellcheck'


def test_system_deps_non_root_prints_the_command_and_fails(fake_system):
    env, log = fake_system
    result = run('system-deps.sh', env=dict(env, INSTALLED=ALL.replace('debootstrap ', ''), FAKE_UID='1000'))
    assert result.returncode == 1
    assert 'missing Debian packages: debootstrap' in result.stderr
    assert 'apt-get update && apt-get install -y --no-install-recommends debootstrap' in result.stderr
    assert not log.exists(), 'a non-root run must not call apt-get'


def test_system_deps_root_installs_only_what_is_missing(fake_system):
    env, log = fake_system
    result = run('system-deps.sh', env=dict(env, INSTALLED='podman runc conmon debootstrap debian-archive-keyring postgresql shellcheck', FAKE_UID='0'))
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        'update -qq',
        'install -y --no-install-recommends slirp4netns uidmap fuse-overlayfs postgresql-client',
    ]


def test_system_deps_nothing_to_do(fake_system):
    env, log = fake_system
    result = run('system-deps.sh', env=dict(env, INSTALLED=ALL, FAKE_UID='1000'))
    assert result.returncode == 0
    assert 'all present' in result.stdout
    assert not log.exists()


# --- molecule.sh -----------------------------------------------------------------------

def test_molecule_rejects_an_unknown_scenario_before_touching_podman(tmp_path):
    """A typo must not build images or remove anyone's containers (a podman stand-in logs its calls)."""
    write(tmp_path / 'bin' / 'podman', '#!/bin/sh\necho "$*" >>"$PODMAN_LOG"\n', 0o755)
    log = tmp_path / 'podman.log'
    result = run('molecule.sh', 'default', 'no_such_scenario',
                 env={'PATH': '%s:%s' % (tmp_path / 'bin', os.environ['PATH']), 'PODMAN_LOG': str(log)})
    assert result.returncode == 2
    assert "no scenario 'no_such_scenario'" in result.stderr
    assert not log.exists(), 'podman was called: %s' % log.read_text()
