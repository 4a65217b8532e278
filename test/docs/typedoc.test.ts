/**
 * The API reference (`npm run docs`) stays complete: TypeDoc, with the project's typedoc.json (undocumented
 * exports, links to symbols left out of the docs and unresolved links are all warnings, and warnings are errors),
 * converts both entry points without a single warning, every class carries an example, and so does every public
 * member of the {@link Soledad} facade. The site is written to a temporary directory, never to docs/api.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Application, LogLevel, Logger, ReflectionKind,
  type Comment, type DeclarationReflection, type ProjectReflection,
} from 'typedoc';

const ROOT = join(import.meta.dirname, '../..');

/** Keeps every message TypeDoc logs, so the test can show them. */
class CollectingLogger extends Logger {
  readonly messages: Array<{ level: LogLevel; text: string }> = [];

  override log(message: string, level: LogLevel): void {
    this.messages.push({ level, text: message });
  }
}

function hasExample(comment: Comment | undefined): boolean {
  return comment?.blockTags.some((t) => t.tag === '@example') ?? false;
}

/** The comment that documents a member: its own, or its first signature's (methods), or its getter's. */
function memberComment(m: DeclarationReflection): Comment | undefined {
  return m.comment ?? m.signatures?.[0]?.comment ?? m.getSignature?.comment;
}

let out: string;
let logger: CollectingLogger;
let project: ProjectReflection | undefined;

before(async () => {
  out = mkdtempSync(join(tmpdir(), 'soledad-typedoc-'));
  const app = await Application.bootstrapWithPlugins({ options: join(ROOT, 'typedoc.json'), out });
  logger = new CollectingLogger();
  app.logger = logger;
  project = await app.convert();
  if (project !== undefined) {
    app.validate(project);
    await app.generateOutputs(project);
  }
});
after(() => rmSync(out, { recursive: true, force: true }));

describe('npm run docs (TypeDoc)', () => {
  it('converts both entry points with validation on and logs no warning or error', () => {
    assert.ok(project !== undefined, 'TypeDoc could not convert the project');
    const problems = logger.messages.filter((m) => m.level >= LogLevel.Warn).map((m) => m.text);
    assert.deepEqual(problems, [], `TypeDoc reported:\n${problems.join('\n')}`);
    assert.equal(logger.warningCount + logger.errorCount + logger.validationWarningCount, 0);
  });

  it('writes an HTML reference of both entry points', () => {
    assert.ok(existsSync(join(out, 'index.html')));
    const soledadPage = readFileSync(join(out, 'classes', 'index.Soledad.html'), 'utf8');
    assert.match(soledadPage, /createDoc/);
    assert.ok(existsSync(join(out, 'functions', 'server.startServer.html')), 'soledad/server is documented too');
  });

  it('every class has an example', () => {
    const missing = project!.getReflectionsByKind(ReflectionKind.Class)
      .filter((c) => !hasExample(c.comment))
      .map((c) => c.getFullName());
    assert.deepEqual(missing, [], `classes without @example:\n${missing.join('\n')}`);
  });

  it('every public member of the Soledad facade has an example', () => {
    const soledad = project!.getReflectionsByKind(ReflectionKind.Class).find((c) => c.getFullName() === 'index.Soledad') as
      DeclarationReflection | undefined;
    assert.ok(soledad !== undefined, 'Soledad is exported from the main entry point');
    const members = (soledad.children ?? []).filter((m) =>
      m.kindOf(ReflectionKind.Method | ReflectionKind.Accessor) && m.inheritedFrom === undefined && !m.flags.isPrivate);
    assert.ok(members.length >= 30, `expected the whole facade, found ${members.length} members`);
    const missing = members.filter((m) => !hasExample(memberComment(m))).map((m) => m.name);
    assert.deepEqual(missing, [], `Soledad members without @example: ${missing.join(', ')}`);
  });
});
