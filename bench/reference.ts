/**
 * A reference build of evident, from an earlier commit of this repository,
 * measured beside the current one in the same run: a git worktree of the
 * commit, installed and built once, kept in ~/.cache/evident-bench/<commit>.
 * Its log files are the same format for a log that does not sign, so the
 * same seeded directories serve both.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** What the bench uses of a build: a log that appends, opened on a directory. */
export interface Appender {
  append(input: unknown): Promise<unknown>;
  close(): Promise<void>;
}

export interface Build {
  /** The commit, or 'current'. */
  name: string;
  /** Opens the log in `dir` for appending. */
  open(dir: string): Promise<Appender>;
  /** Its benchmark writer process script (append-worker.js). */
  worker: string;
}

/** The build at `commit`, prepared on first use (git worktree, npm ci, which builds it). */
export async function referenceBuild(root: string, commit: string): Promise<Build> {
  const sha = execFileSync('git', ['rev-parse', '--short=12', `${commit}^{commit}`], {
    cwd: root,
    encoding: 'utf8',
  }).trim();
  const dir = join(process.env.EVIDENT_BENCH_CACHE ?? join(homedir(), '.cache', 'evident-bench'), sha);
  const log = join(dir, 'dist', 'src', 'log.js');
  if (!existsSync(log)) {
    console.error(`preparing the reference build ${sha} in ${dir}...`);
    mkdirSync(join(dir, '..'), { recursive: true });
    if (!existsSync(join(dir, 'package.json'))) {
      execFileSync('git', ['worktree', 'add', '--force', '--detach', dir, sha], { cwd: root, stdio: 'ignore' });
    }
    const env = { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? '/usr' };
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'], env });
  }
  const { Log } = (await import(log)) as { Log: { open(options: object): Promise<Appender> } };
  // Builds from before the store option (with no evident/verify) named the directory `dir`.
  const named = existsSync(join(dir, 'dist', 'src', 'verify.js')) ? 'store' : 'dir';
  return {
    name: sha,
    open: (logDir) => Log.open({ [named]: logDir }),
    worker: join(dir, 'dist', 'bench', 'append-worker.js'),
  };
}
