"""Example agency inventory (pyinfra format): read by `hardening deploy` and `hardening verify`.

Each module-level list is a group; each host is (name, data). Host data names the hardware
profile (hwprofiles/), the sensitivity of the personal information on the host (low | medium |
high, 秘匿性), and its entry in the asset register (資産台帳), which the `terminal` checks
compare with what the host reports. SSH settings are pyinfra's own keys; `hardening verify`
reads them too and always checks host keys strictly against ssh_known_hosts_file.
"""

_ssh = {
    "ssh_user": "hardening",
    "ssh_key": "~/.ssh/id_ed25519_hardening",
    "ssh_known_hosts_file": "inventories/known_hosts",
    "ssh_strict_host_key_checking": "yes",
    "_sudo": True,
}

terminals = [
    ("pc-kokuho-001.soumu.example.lg.jp", {
        **_ssh,
        "profile": "terminal",
        "sensitivity": "high",
        "asset": {"register_id": "PC-2024-0117", "serial": "5CG1234ABC",
                  "mac": "3c:52:82:aa:10:17", "room": "本庁舎3F 保険年金課"},
    }),
    ("pc-kokuho-002.soumu.example.lg.jp", {
        **_ssh,
        "profile": "terminal",
        "sensitivity": "medium",
        "asset": {"register_id": "PC-2024-0118", "serial": "5CG1234ABD", "room": "本庁舎3F 保険年金課"},
    }),
]

servers = [
    ("db-juki-01.soumu.example.lg.jp", {
        **_ssh,
        "profile": "server-room",
        "sensitivity": "high",
        "asset": {"register_id": "SV-2023-0003", "serial": "JPE12345XY", "room": "本庁舎B1 サーバ室"},
    }),
    ("file-01.soumu.example.lg.jp", {
        **_ssh,
        "profile": "server",
        "asset": {"register_id": "SV-2023-0009", "room": "本庁舎B1 サーバ室"},
    }),
]
