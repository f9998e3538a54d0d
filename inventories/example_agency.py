"""Example agency inventory (pyinfra format): read by `hardening deploy` and `hardening verify`.

Each module-level list is a group; each host is (name, data). Host data names the hardware
profile, the sensitivity of the personal information on the host (low | medium | high, 秘匿性),
and its entry in the asset register (資産台帳), which the `terminal` checks compare with what the
host reports. SSH settings are pyinfra's own keys; `hardening verify` reads them too and always
checks host keys strictly against ssh_known_hosts_file.

The profiles named here are the agency's own, in inventories/profiles/, extending the shipped
ones: pass that directory to every command,

    hardening verify inventories/example_agency.py --profiles inventories/profiles

What a check needs and the shipped data cannot know is reported as "not configured" (never a
pass; verify exits 5 when nothing else is wrong), with the key to fill:

    inventory: asset.machine_id / asset.serial / asset.mac
        here, per host, as the asset register records them: `cat /etc/machine-id` (32 hex
        digits), `cat /sys/class/dmi/id/product_serial` (compared ignoring case) and the MAC of
        one network interface (lower case, colons)
    hwprofiles: measures.terminal.expected_networks   the networks the host may appear on
    hwprofiles: measures.auth.personal_data           the directories holding personal information
        in the agency profile (inventories/profiles/*.yaml); profile data cannot be set per host
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
        "profile": "soumu-terminal",
        "sensitivity": "high",
        "asset": {"register_id": "PC-2024-0117", "serial": "5CG1234ABC",
                  "machine_id": "3f6c1e0b9a7d4c2e8b5a1f0e7d6c5b4a",
                  "mac": "3c:52:82:aa:10:17", "room": "本庁舎3F 保険年金課"},
    }),
    ("pc-kokuho-002.soumu.example.lg.jp", {
        **_ssh,
        "profile": "soumu-terminal",
        "sensitivity": "medium",
        "asset": {"register_id": "PC-2024-0118", "serial": "5CG1234ABD",
                  "machine_id": "9b2d4f6a8c0e1b3d5f7a9c1e3b5d7f90",
                  "mac": "3c:52:82:aa:10:18", "room": "本庁舎3F 保険年金課"},
    }),
]

servers = [
    ("db-juki-01.soumu.example.lg.jp", {
        **_ssh,
        "profile": "soumu-server-room",
        "sensitivity": "high",
        "asset": {"register_id": "SV-2023-0003", "serial": "JPE12345XY",
                  "machine_id": "c4a1e7d2b9f04a6c8e3d1b5f7a9c2e4d",
                  "mac": "b4:96:91:0c:22:31", "room": "本庁舎B1 サーバ室"},
    }),
    ("file-01.soumu.example.lg.jp", {
        **_ssh,
        "profile": "soumu-server",
        "asset": {"register_id": "SV-2023-0009", "serial": "JPE12345Z9",
                  "machine_id": "0d8e2f4a6b1c3e5d7f9a0b2c4d6e8f1a",
                  "mac": "b4:96:91:0c:22:40", "room": "本庁舎B1 サーバ室"},
    }),
]
