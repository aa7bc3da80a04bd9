"""Services come back after a host reboot: a box whose main process has the restart
policy always or unless-stopped and that was running when the host went down is started
again by the next `cocoon` command (once per boot id), by `cocoon autostart`, and when
`cocoon serve` starts; one a user stopped, or one without such a policy, is not. The
reboot is simulated: the monitors are killed with SIGKILL and the boot id changes."""
import os
import signal

from conftest import decode
from test_mainproc import info, run_d, wait_for


def reboot(vm, boot_id_file, boxes, new_id):
    """The host 'goes down': every monitor dies at once, and a new boot id appears."""
    for box in boxes:
        pid = info(vm, box)["pid"]
        if pid:
            os.kill(pid, signal.SIGKILL)
    for box in boxes:
        wait_for(f"box {box} to be down", lambda b=box: not info(vm, b)["running"])
    with open(boot_id_file, "w") as f:
        f.write(new_id + "\n")


def test_next_command_after_a_reboot_starts_the_boxes_that_served(vm, tmp_path):
    boot_id = str(tmp_path / "boot_id")
    with open(boot_id, "w") as f:
        f.write("boot-one\n")
    env = {"COCOON_BOOT_ID_FILE": boot_id}
    vm.env.update(env)
    names = ["always", "unless", "stopped", "nopolicy"]
    try:
        run_d(vm, "--name", "always", "--restart", "always", "--", "sleep", "1000")
        run_d(vm, "--name", "unless", "--restart", "unless-stopped", "--", "sleep", "1000")
        run_d(vm, "--name", "stopped", "--restart", "unless-stopped", "--", "sleep", "1000")
        run_d(vm, "--name", "nopolicy", "--", "sleep", "1000")
        vm.run("stop", "stopped", check=0)  # a user's stop: it stays stopped
        reboot(vm, boot_id, names, "boot-two")
        r = vm.run("ls", "-a", check=0)  # any command notices the new boot first
        err = decode(r.stderr)
        assert "the host restarted: started box always again" in err, err
        assert "the host restarted: started box unless again" in err, err
        assert "box stopped" not in err and "box nopolicy" not in err, err
        running = {n: info(vm, n)["running"] for n in names}
        assert running == {"always": True, "unless": True, "stopped": False, "nopolicy": False}, running
        wait_for("the main process to run again", lambda: info(vm, "always")["main"]["state"] == "running")
        # once per boot: the next command does nothing more
        vm.run("stop", "always", check=0)
        r = vm.run("ls", "-a", check=0)
        assert "host restarted" not in decode(r.stderr), r
        assert not info(vm, "always")["running"]
        # a user's stop holds across the next reboot too; `cocoon autostart` does the same pass
        reboot(vm, boot_id, ["unless"], "boot-three")
        r = vm.run("autostart", check=0)
        assert "started box unless again" in decode(r.stderr), r
        assert "always" not in decode(r.stderr), r
        assert info(vm, "unless")["running"] and not info(vm, "always")["running"]
    finally:
        vm.run("rm", "-f", *names)


def test_a_box_that_cannot_boot_again_is_reported_once(vm, tmp_path):
    boot_id = str(tmp_path / "boot_id")
    with open(boot_id, "w") as f:
        f.write("boot-one\n")
    vm.env["COCOON_BOOT_ID_FILE"] = boot_id
    try:
        run_d(vm, "--name", "svc", "--restart", "always", "--", "sleep", "1000")
        reboot(vm, boot_id, ["svc"], "boot-two")
        # its monitor cannot run any more: each of the 3 tries fails, one line says why
        r = vm.run("ls", "-a", env={"COCOON_VMM": "/nonexistent/cocoon-vmm"}, check=0)
        err = decode(r.stderr)
        assert err.count("box svc did not start") == 1 and "cocoon-vmm" in err, err
        assert not info(vm, "svc")["running"]
    finally:
        vm.run("rm", "-f", "svc")


def test_serve_starts_them_as_it_starts(vm, tmp_path):
    from test_serve import Server
    boot_id = str(tmp_path / "boot_id")
    with open(boot_id, "w") as f:
        f.write("boot-one\n")
    vm.env["COCOON_BOOT_ID_FILE"] = boot_id
    server = None
    try:
        run_d(vm, "--name", "svc", "--restart", "unless-stopped", "--", "sleep", "1000")
        vm.run("ls", check=0)  # the boot id is recorded
        reboot(vm, boot_id, ["svc"], "boot-two")
        server = Server(vm).start()
        assert "the host restarted: started box svc again" in server.stderr(), server.stderr()
        assert info(vm, "svc")["running"]
        assert server.stop() == 0, server.stderr()
    finally:
        if server and server.proc.poll() is None:
            server.kill()
        vm.run("rm", "-f", "svc")
