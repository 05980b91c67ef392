/**
 * Build a tiny guest from Debian packages only: the distribution kernel (linux-image-amd64's
 * dependency, e.g. linux-image-6.1.0-NN-amd64) and busybox-static, fetched with `apt-get download`,
 * unpacked with `dpkg -x` into a cache folder, and an initramfs (`busybox cpio -o -H newc`) whose /init
 * fills a tmpfs file from /dev/urandom and loops md5sum / sort / gzip -c over it, printing each result
 * to the serial console as `R <iteration> <kind> <md5>`.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export type GuestKind = "md5" | "walk";

export interface Guest {
  kernel: string;
  initrd: string;
  dir: string;
  kind: GuestKind;
  /** The result kinds one full round prints (`R <i> <kind> <sum>`). */
  results: string[];
}

/** What both guests' init does first: busybox applets, /proc, /sys, /dev. */
const BOOT_PREAMBLE = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
`;

/**
 * The irregular guest: a static program (scripts/qemu/walk.c, built with the host's gcc -static)
 * walks 512 pages (2 MB) of its own memory in a fixed random order, hashing each page 4 times (the
 * work per page), and prints one "R <round> walk <sum>" per round. Its access order
 * is irregular in guest-physical memory but repeats every round, so a model learned in one
 * migration of the running VM applies to the next; spatial order cannot help.
 */
export const WALK_INIT_SCRIPT = `${BOOT_PREAMBLE}PAGES=512
PASSES=4
for a in $(cat /proc/cmdline); do case "$a" in ppmpages=*) PAGES="\${a#ppmpages=}";; ppmpasses=*) PASSES="\${a#ppmpasses=}";; esac; done
echo "GUEST walking \${PAGES} pages, \${PASSES} passes per page"
exec /bin/walk $PAGES $PASSES 12345
`;

export const INIT_SCRIPT = `${BOOT_PREAMBLE}MB=96
for a in $(cat /proc/cmdline); do case "$a" in ppmmb=*) MB="\${a#ppmmb=}";; esac; done
mkdir -p /mnt
mount -t tmpfs -o size=$((MB + 48))m tmpfs /mnt
echo "GUEST filling \${MB} MB"
dd if=/dev/urandom of=/mnt/data bs=1M count=$MB 2>/dev/null
head -c 262144 /mnt/data | od -An -tx4 -v > /mnt/text
echo "GUEST ready"
i=0
while true; do
  i=$((i + 1))
  s=$(md5sum /mnt/data); echo "R $i md5 \${s%% *}"
  s=$(sort /mnt/text | md5sum); echo "R $i sort \${s%% *}"
  s=$(head -c 4194304 /mnt/data | gzip -c | md5sum); echo "R $i gzip \${s%% *}"
done
`;

function sh(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export function cacheDir(): string {
  return process.env.PPM_QEMU_CACHE ?? path.join(os.homedir(), ".cache", "ppm-prefetch-qemu");
}

/** Fetch (once) and build the guest. Needs apt-get, dpkg and network access to the Debian mirror. */
export function buildGuest(log: (s: string) => void = () => {}, kind: GuestKind = "md5"): Guest {
  const dir = cacheDir();
  fs.mkdirSync(dir, { recursive: true });
  const debs = path.join(dir, "debs");
  const root = path.join(dir, "root");
  fs.mkdirSync(debs, { recursive: true });
  const initrd = path.join(dir, kind === "md5" ? "initrd.img" : `initrd-${kind}.img`);
  const script = kind === "md5" ? INIT_SCRIPT : WALK_INIT_SCRIPT;
  let walkBin: string | null = null;
  if (kind === "walk") {
    const src = path.join(import.meta.dirname, "walk.c");
    walkBin = path.join(dir, "walk");
    const srcText = fs.readFileSync(src, "utf8");
    const wstamp = path.join(dir, "walk.stamp");
    if (!fs.existsSync(walkBin) || !fs.existsSync(wstamp) || fs.readFileSync(wstamp, "utf8") !== srcText) {
      log("guest: building the walk program (gcc -static)");
      try {
        sh("gcc", ["-static", "-O2", "-o", walkBin, src]);
      } catch (e) {
        throw new Error(`cannot build scripts/qemu/walk.c with gcc -static (apt-get install -y gcc libc6-dev): ${(e as Error).message.split("\n")[0]}`);
      }
      fs.writeFileSync(wstamp, srcText);
    }
  }
  const findKernel = () => fs.existsSync(path.join(root, "boot"))
    ? fs.readdirSync(path.join(root, "boot")).filter((f) => f.startsWith("vmlinuz-")).sort().pop()
    : undefined;
  const bb = path.join(root, "bin", "busybox");
  if (!findKernel() || !fs.existsSync(bb)) {
    let kpkg = process.env.PPM_QEMU_KERNEL_PKG;
    if (!kpkg) {
      const deps = sh("apt-cache", ["depends", "linux-image-amd64"]);
      kpkg = /Depends:\s+(linux-image-\S+-amd64)\b/.exec(deps)?.[1];
      if (!kpkg) throw new Error("cannot resolve linux-image-amd64 (run apt-get update)");
    }
    log(`guest: apt-get download ${kpkg} busybox-static into ${debs}`);
    sh("apt-get", ["download", kpkg, "busybox-static"], debs);
    for (const f of fs.readdirSync(debs).filter((f) => f.endsWith(".deb"))) {
      if (f.startsWith("busybox-static") || f.startsWith(kpkg + "_")) sh("dpkg", ["-x", path.join(debs, f), root]);
    }
  }
  const kernelName = findKernel();
  if (!kernelName || !fs.existsSync(bb)) throw new Error(`guest: no kernel or busybox under ${root}`);
  const kernel = path.join(root, "boot", kernelName);

  const stamp = path.join(dir, kind === "md5" ? "initrd.stamp" : `initrd-${kind}.stamp`);
  const want = script + kernelName + (walkBin ? fs.readFileSync(walkBin).length : "");
  if (!fs.existsSync(initrd) || !fs.existsSync(stamp) || fs.readFileSync(stamp, "utf8") !== want) {
    log("guest: building initramfs");
    const ir = fs.mkdtempSync(path.join(os.tmpdir(), "ppm-initrd-"));
    for (const d of ["bin", "sbin", "proc", "sys", "dev", "mnt", "tmp", "usr/bin", "usr/sbin"]) fs.mkdirSync(path.join(ir, d), { recursive: true });
    fs.copyFileSync(bb, path.join(ir, "bin", "busybox"));
    fs.chmodSync(path.join(ir, "bin", "busybox"), 0o755);
    fs.writeFileSync(path.join(ir, "init"), script, { mode: 0o755 });
    if (walkBin) { fs.copyFileSync(walkBin, path.join(ir, "bin", "walk")); fs.chmodSync(path.join(ir, "bin", "walk"), 0o755); }
    const list = sh("find", [".", "-mindepth", "1"], ir);
    const cpio = execFileSync(bb, ["cpio", "-o", "-H", "newc"], { cwd: ir, input: list, maxBuffer: 1 << 28, stdio: ["pipe", "pipe", "ignore"] });
    fs.writeFileSync(initrd, cpio);
    fs.writeFileSync(stamp, want);
    fs.rmSync(ir, { recursive: true, force: true });
  }
  return { kernel, initrd, dir, kind, results: kind === "md5" ? ["md5", "sort", "gzip"] : ["walk"] };
}
