/**
 * The package as users get it: packed (which builds the addon for the
 * platforms it ships), then installed into an empty project on a machine
 * with no C compiler, make or Python. It appends and verifies there. And
 * installed with --ignore-scripts and no addon at all, everything that does
 * not write a local log still works: evident/verify, receipts, the CLI's
 * help and its verify-receipt; only appending says, clearly, what is missing.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ROOT, tempDir } from './helpers.js';

/** Commands a shell and npm need, and nothing that compiles. */
const TOOLS = ['sh', 'bash', 'env', 'cat', 'ls', 'mkdir', 'rm', 'cp', 'mv', 'ln', 'chmod', 'uname', 'grep', 'sed'];
const MORE_TOOLS = ['tar', 'gzip', 'readlink', 'dirname', 'basename', 'true', 'false', 'test', 'sleep', 'tail', 'date'];

/** A directory to use as PATH: node, npm and a few basic commands, and no compiler. */
function bareBin(): string {
  const bin = tempDir('evident-bin-');
  for (const tool of [...TOOLS, ...MORE_TOOLS]) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    if (found !== '') symlinkSync(found, join(bin, tool));
  }
  symlinkSync(process.execPath, join(bin, 'node'));
  // npm's own script, wherever the npm on PATH lives (not under the running Node's prefix, which may have none).
  const npmCli = realpathSync(spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim());
  writeFileSync(join(bin, 'npm'), `#!/bin/sh\nexec node ${npmCli} "$@"\n`, { mode: 0o755 });
  writeFileSync(join(bin, 'npx'), `#!/bin/sh\nexec node ${join(dirname(npmCli), 'npx-cli.js')} "$@"\n`, {
    mode: 0o755,
  });
  for (const compiler of ['cc', 'gcc', 'g++', 'c++', 'make', 'python3']) {
    const found = spawnSync('sh', ['-c', `command -v ${compiler}`], { env: { PATH: bin }, encoding: 'utf8' });
    assert.notEqual(found.status, 0, `${compiler} must not be on the bare PATH`);
  }
  return bin;
}

/** The environment that says how to reach the registry. */
const NETWORK =
  /^(NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|(HTTPS?|NO|ALL)_PROXY|(https?|no|all)_proxy|npm_config_(registry|proxy|https_proxy|cafile|strict_ssl))$/;

/** Runs a command in `cwd` with only `bin` on PATH. */
function run(bin: string, cwd: string, command: string, args: string[], input?: string) {
  return spawnSync(command, args, {
    cwd,
    input,
    encoding: 'utf8',
    // prefer-offline: the dependencies are in npm's cache from `npm ci`. What reaches the registry is kept: the
    // proxy, and the certificates that a Node from the npm registry needs to trust this machine's TLS proxy.
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([name]) => NETWORK.test(name))),
      PATH: bin,
      HOME: process.env.HOME,
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_prefer_offline: 'true',
    },
  });
}

let tarball = '';
let bin = '';

describe('installing', () => {
  it('never rebuilds an addon that is built: npm install runs node-gyp-build, which loads it or builds it', () => {
    const addon = join(ROOT, 'build', 'Release', 'evident_native.node');
    const before = statSync(addon).mtimeMs;
    const bin = join(ROOT, 'node_modules', '.bin'); // on PATH, as npm runs an install script
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    const ran = spawnSync(join(bin, 'node-gyp-build'), [], { cwd: ROOT, env, encoding: 'utf8' });
    assert.equal(ran.status, 0, ran.stderr);
    assert.equal(statSync(addon).mtimeMs, before, 'not rebuilt');
  });
});

describe('the packed package', () => {
  before(() => {
    // Pack a copy of the sources, so that packing (which rebuilds dist/) leaves this test run alone.
    const copy = tempDir('evident-pack-');
    for (const name of ['package.json', 'package-lock.json', 'tsconfig.json', 'LICENSE', 'binding.gyp']) {
      cpSync(join(ROOT, name), join(copy, name));
    }
    for (const dir of ['src', 'native', 'scripts']) cpSync(join(ROOT, dir), join(copy, dir), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
    const out = tempDir('evident-tarball-');
    execFileSync('npm', ['pack', '--pack-destination', out], { cwd: copy, stdio: ['ignore', 'ignore', 'inherit'] });
    tarball = join(out, readdirSync(out)[0] as string);
    bin = bareBin();
  });

  it('installs where there is no compiler, with a prebuilt addon, and appends and verifies', () => {
    const project = tempDir('evident-user-');
    assert.equal(run(bin, project, 'npm', ['init', '-y']).status, 0);
    const installed = run(bin, project, 'npm', ['install', tarball]);
    assert.equal(installed.status, 0, installed.stderr);
    const evident = join(project, 'node_modules', 'evident');
    assert.equal(existsSync(join(evident, 'build')), false, 'nothing was built');
    assert.ok(existsSync(join(evident, 'prebuilds', 'linux-x64', 'evident.glibc.node')));
    const dir = join(project, 'audit');
    const appended = run(bin, project, 'npx', ['evident', 'append', '--dir', dir, '--actor', 'a', '--action', 'x.y']);
    assert.equal(appended.status, 2, 'no log yet: create one first');
    assert.equal(run(bin, project, 'npx', ['evident', 'init', '--dir', dir]).status, 0);
    const script = `
      import { Log } from 'evident';
      const log = new Log({ store: ${JSON.stringify(dir)} });
      await log.appendBatch([{ actor: 'ci', action: 'build.start' }, { actor: 'ci', action: 'build.finish' }]);
      const result = await log.verify();
      await log.close();
      console.log(JSON.stringify(result));
    `;
    const used = run(bin, project, 'node', ['--input-type=module', '-e', script]);
    assert.equal(used.status, 0, used.stderr);
    assert.equal(JSON.parse(used.stdout).size, 2);
    const verified = run(bin, project, 'npx', ['evident', 'verify', '--dir', dir]);
    assert.match(verified.stdout, /^ok: 2 entries verified/);
  });

  it('carries a linux-arm64 addon that loads and locks on arm64 (run under qemu-user)', (t) => {
    const armNode = process.env.EVIDENT_ARM64_NODE ?? '';
    const qemu = spawnSync('sh', ['-c', 'command -v qemu-aarch64'], { encoding: 'utf8' }).stdout.trim();
    if (qemu === '' || !existsSync(armNode) || !existsSync('/usr/aarch64-linux-gnu')) {
      t.skip('needs qemu-user, libc6-arm64-cross and EVIDENT_ARM64_NODE (an arm64 node binary); .ci/run provides them');
      return;
    }
    const project = tempDir('evident-arm64-');
    assert.equal(run(bin, project, 'npm', ['init', '-y']).status, 0);
    assert.equal(run(bin, project, 'npm', ['install', '--ignore-scripts', tarball]).status, 0);
    assert.ok(existsSync(join(project, 'node_modules', 'evident', 'prebuilds', 'linux-arm64', 'evident.glibc.node')));
    const dir = join(project, 'audit');
    const script = `
      import { Log } from 'evident';
      const log = new Log({ store: ${JSON.stringify(dir)}, create: true });
      await log.append({ actor: 'arm', action: 'x.y' });
      const result = await log.verify();
      await log.close();
      console.log(process.arch, result.ok, result.size);
    `;
    const ran = spawnSync(qemu, ['-L', '/usr/aarch64-linux-gnu', armNode, '--input-type=module', '-e', script], {
      cwd: project,
      encoding: 'utf8',
    });
    assert.equal(ran.status, 0, ran.stderr);
    assert.equal(ran.stdout.trim(), 'arm64 true 1');
  });

  it('without scripts or any addon, verifies receipts and notes, and says what appending needs', () => {
    // A receipt made where the addon works, to check where it does not.
    const maker = tempDir('evident-maker-');
    const keygen = run(bin, maker, 'node', [
      join(ROOT, 'dist/src/cli/main.js'),
      'keygen',
      '--name',
      'r.example/log',
      '--out',
      join(maker, 'k'),
    ]);
    const vkey = keygen.stdout.trim();
    const log = join(maker, 'log');
    const cli = (args: string[]) => run(bin, maker, 'node', [join(ROOT, 'dist/src/cli/main.js'), ...args]);
    assert.equal(cli(['init', '--dir', log, '--key', join(maker, 'k')]).status, 0);
    const entry = cli(['append', '--dir', log, '--actor', 'a', '--action', 'x.y']).stdout;
    writeFileSync(join(maker, 'entry.json'), entry);
    assert.equal(cli(['receipt', '--dir', log, '--seq', '1', '--out', join(maker, 'receipt')]).status, 0);

    const project = tempDir('evident-noscripts-');
    assert.equal(run(bin, project, 'npm', ['init', '-y']).status, 0);
    const installed = run(bin, project, 'npm', ['install', '--ignore-scripts', tarball]);
    assert.equal(installed.status, 0, installed.stderr);
    rmSync(join(project, 'node_modules', 'evident', 'prebuilds'), { recursive: true }); // no addon at all
    const script = `
      import { readFileSync } from 'node:fs';
      import { parseReceipt, parseVerifierKey, verifyReceipt, Witness } from 'evident/verify';
      import { Log } from 'evident';
      const checkpoint = verifyReceipt(
        parseReceipt(readFileSync(${JSON.stringify(join(maker, 'receipt'))}, 'utf8')),
        JSON.parse(readFileSync(${JSON.stringify(join(maker, 'entry.json'))}, 'utf8')),
        { log: parseVerifierKey(${JSON.stringify(vkey)}) },
      );
      console.log(checkpoint.size, typeof Witness, typeof Log);
    `;
    const checked = run(bin, project, 'node', ['--input-type=module', '-e', script]);
    assert.equal(checked.status, 0, checked.stderr);
    assert.equal(checked.stdout.trim(), '2 function function');
    assert.equal(run(bin, project, 'npx', ['evident', '--help']).status, 0);
    const receipt = run(bin, project, 'npx', [
      'evident',
      'verify-receipt',
      join(maker, 'receipt'),
      '--entry',
      join(maker, 'entry.json'),
      '--key',
      vkey,
    ]);
    assert.equal(receipt.status, 0, receipt.stderr);
    mkdirSync(join(project, 'audit'));
    const append = run(bin, project, 'npx', ['evident', 'init', '--dir', join(project, 'audit')]);
    assert.equal(append.status, 1);
    assert.match(append.stderr, /needs evident's flock addon.*\[EVIDENT_NATIVE\]/);
  });
});
