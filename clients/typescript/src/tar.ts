// A small streaming tar reader and the header writer pack uses: ustar
// headers, PAX extended headers (`x`, for path, linkpath, size and mtime)
// and GNU long names (`L`, `K`). No dependency: the archives of directory
// layers are the only tars this client reads or writes.

/** A tar block. */
export const BLOCK = 512;

/** The largest extension header (PAX `x`, GNU `L`/`K`) this reader holds in memory. */
export const EXTENSION_MAX_BYTES = 1 << 20;

/** A malformed archive: a cut stream, a bad checksum or field, a broken gzip. */
export class BrokenArchive extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BrokenArchive";
  }
}

/** One entry of the archive, its extension headers folded in. */
export interface TarEntry {
  /** The name as stored (PAX `path`, a GNU long name, or prefix/name), raw bytes. */
  name: Buffer;
  /** A link's target (PAX `linkpath`, a GNU long link name, or linkname). */
  linkName: Buffer;
  /** The type flag: "0" a file ("\0" and "7" are read as "0"), "1" a hard link, "2" a symlink, "5" a directory... */
  type: string;
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  size: number;
  /**
   * The entry's bytes, in pieces as they arrive. What is not read before the
   * next entry is asked for is skipped.
   */
  data(): AsyncGenerator<Buffer>;
}

/** Pulls bytes from an async iterable of pieces. */
class Source {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private readonly it: AsyncIterator<Buffer>;

  constructor(pieces: AsyncIterable<Buffer>) {
    this.it = pieces[Symbol.asyncIterator]();
  }

  private get available(): number {
    return this.buf.length - this.pos;
  }

  /** One more piece into the buffer; false at the end. */
  private async more(): Promise<boolean> {
    const next = await this.it.next();
    if (next.done) return false;
    const rest = this.buf.subarray(this.pos);
    this.buf = rest.length ? Buffer.concat([rest, next.value]) : next.value;
    this.pos = 0;
    return true;
  }

  /** Exactly n bytes; undefined at a clean end (no byte at all), broken if cut inside. */
  async exact(n: number): Promise<Buffer | undefined> {
    while (this.available < n) {
      if (!(await this.more())) {
        if (this.available === 0) return undefined;
        throw new BrokenArchive("the archive ends inside a header or an entry");
      }
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Up to max (at least one) bytes; broken at the end. */
  async some(max: number): Promise<Buffer> {
    if (this.available === 0 && !(await this.more())) {
      throw new BrokenArchive("the archive ends inside an entry");
    }
    const n = Math.min(max, this.available);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  async skip(n: number): Promise<void> {
    for (let left = n; left > 0; ) left -= (await this.some(left)).length;
  }

  /** Reads to the end, throwing the pieces away. */
  async drain(): Promise<void> {
    this.pos = this.buf.length;
    while (await this.more()) this.pos = this.buf.length;
  }
}

/** The bytes of a field up to its first NUL. */
function cString(field: Buffer): Buffer {
  const end = field.indexOf(0);
  return end < 0 ? field : field.subarray(0, end);
}

/** A numeric field: octal ASCII (spaces and NULs around it), or GNU base-256. */
function numeric(field: Buffer, what: string): number {
  if (field[0]! & 0x80) {
    if (field[0] === 0xff) throw new BrokenArchive(`a header's ${what} is negative`);
    let n = field[0]! & 0x7f;
    for (const byte of field.subarray(1)) {
      n = n * 256 + byte;
      if (n > Number.MAX_SAFE_INTEGER) throw new BrokenArchive(`a header's ${what} is too large`);
    }
    return n;
  }
  const text = field.toString("latin1").replace(/\0.*$/s, "").trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new BrokenArchive(`a header's ${what} is not a number: ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

/** The header's checksum, checked (unsigned sum, or signed as some old writers made it). */
function checkSum(header: Buffer): void {
  const stored = numeric(header.subarray(148, 156), "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : header[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (stored !== unsigned && stored !== signed) throw new BrokenArchive("a header's checksum does not match");
}

/** PAX records (`LEN key=value\n`...) as key to raw value. */
function paxRecords(data: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const lenText = space < 0 ? "" : data.subarray(at, space).toString("latin1");
    const len = /^[0-9]+$/.test(lenText) ? parseInt(lenText, 10) : NaN;
    if (!(len > 0) || at + len > data.length || data[at + len - 1] !== 0x0a) {
      // Trailing NULs pad some writers' records.
      if (data.subarray(at).every((b) => b === 0)) break;
      throw new BrokenArchive("a PAX header is malformed");
    }
    const record = data.subarray(space + 1, at + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw new BrokenArchive("a PAX record has no '='");
    records.set(record.subarray(0, eq).toString("utf8"), record.subarray(eq + 1));
    at += len;
  }
  return records;
}

function paxNumber(value: Buffer, what: string): number {
  const text = value.toString("latin1");
  if (!/^-?[0-9]+(\.[0-9]*)?$/.test(text)) throw new BrokenArchive(`a PAX ${what} is not a number`);
  const n = Math.floor(Number(text));
  if (!Number.isSafeInteger(n)) throw new BrokenArchive(`a PAX ${what} is out of range`);
  return n;
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * The entries of the uncompressed tar stream `pieces`. PAX `x` headers and
 * GNU `L`/`K` names are folded into the entry they precede; a PAX global
 * header (`g`) is passed on as an entry of its own. The archive ends at the
 * first zero block (or a clean end of the stream); whatever follows is read
 * to the end and dropped, so a hash of the pieces covers the whole stream.
 * A malformed archive throws BrokenArchive; errors of `pieces` pass through.
 */
export async function* readTar(pieces: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const source = new Source(pieces);
  let pax = new Map<string, Buffer>();
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;
  for (;;) {
    const header = await source.exact(BLOCK);
    if (!header || header.every((b) => b === 0)) break;
    checkSum(header);
    const flag = String.fromCharCode(header[156]!);
    let size = numeric(header.subarray(124, 136), "size");
    if (flag === "x" || flag === "L" || flag === "K") {
      if (size > EXTENSION_MAX_BYTES) throw new BrokenArchive(`an extension header of ${size} bytes`);
      const data = (await source.exact(size)) ?? Buffer.alloc(0);
      if (data.length < size) throw new BrokenArchive("the archive ends inside an extension header");
      await source.skip(padding(size));
      if (flag === "x") pax = new Map([...pax, ...paxRecords(data)]);
      else if (flag === "L") longName = cString(data);
      else longLink = cString(data);
      continue;
    }
    let name = cString(header.subarray(0, 100));
    // POSIX ustar (not GNU's "ustar  "): the prefix field holds the name's start.
    if (header.subarray(257, 263).equals(Buffer.from("ustar\0", "latin1"))) {
      const prefix = cString(header.subarray(345, 500));
      if (prefix.length) name = Buffer.concat([prefix, Buffer.from("/"), name]);
    }
    let linkName = cString(header.subarray(157, 257));
    let mtime = numeric(header.subarray(136, 148), "mtime");
    if (longName) name = longName;
    if (longLink) linkName = longLink;
    const path = pax.get("path");
    if (path) name = path;
    const linkpath = pax.get("linkpath");
    if (linkpath) linkName = linkpath;
    const paxSize = pax.get("size");
    if (paxSize) size = paxNumber(paxSize, "size");
    const paxMtime = pax.get("mtime");
    if (paxMtime) mtime = paxNumber(paxMtime, "mtime");
    pax = new Map();
    longName = longLink = undefined;

    let left = size;
    const data = async function* (): AsyncGenerator<Buffer> {
      while (left > 0) {
        const piece = await source.some(Math.min(left, 1 << 20));
        left -= piece.length;
        yield piece;
      }
    };
    yield {
      name,
      linkName,
      type: flag === "\0" || flag === "7" ? "0" : flag,
      mode: numeric(header.subarray(100, 108), "mode"),
      mtime,
      size,
      data,
    };
    await source.skip(left + padding(size));
  }
  await source.drain();
}

/** Writes an octal numeric field of `width` bytes (digits, then NUL). */
function putOctal(header: Buffer, at: number, width: number, value: number): void {
  header.write(value.toString(8).padStart(width - 1, "0") + "\0", at, width, "latin1");
}

/** The largest value an 11-digit octal field holds (8 GiB - 1). */
const OCTAL_11_MAX = 0o77777777777;

/** One PAX record, `LEN key=value\n`, LEN counting the whole record. */
function paxRecord(key: string, value: string): Buffer {
  const body = Buffer.byteLength(key) + Buffer.byteLength(value) + 3;
  let len = body + String(body).length;
  if (String(len).length + body !== len) len = body + String(len).length;
  return Buffer.from(`${len} ${key}=${value}\n`, "utf8");
}

/** A field holds `s` as is: ASCII (as Go's archive/tar requires of ustar) and within `width` bytes. */
function fits(s: string, width: number): boolean {
  // eslint-disable-next-line no-control-regex
  return /^[\x01-\x7f]*$/.test(s) && s.length <= width;
}

/** What a reader without PAX sees of a name in a PAX header: ASCII, cut to its field. */
function shortened(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, "_").slice(0, 100);
}

/** What pack writes of one entry. */
export interface HeaderFields {
  name: string;
  /** "0" file, "2" symlink, "5" directory. */
  type: string;
  mode: number;
  mtime: number;
  size: number;
  linkName?: string;
}

/** A 512-byte ustar header; uid, gid and the owner names are left zero. */
function ustar(fields: HeaderFields, name: string, linkName: string, size: number, mtime: number): Buffer {
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 100, "utf8");
  putOctal(header, 100, 8, fields.mode & 0o7777);
  putOctal(header, 108, 8, 0);
  putOctal(header, 116, 8, 0);
  putOctal(header, 124, 12, size);
  putOctal(header, 136, 12, mtime);
  header.write(fields.type, 156, 1, "latin1");
  header.write(linkName, 157, 100, "utf8");
  header.write("ustar\0" + "00", 257, 8, "latin1");
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return header;
}

/**
 * The header blocks of one entry: a ustar header, preceded by a PAX `x`
 * header when the name or link target is not ASCII or too long for its
 * field, or the size or mtime too large for theirs.
 */
export function headerBlocks(fields: HeaderFields): Buffer {
  const linkName = fields.linkName ?? "";
  const records: Buffer[] = [];
  let name = fields.name;
  let link = linkName;
  let size = fields.size;
  let mtime = fields.mtime;
  if (!fits(name, 100)) {
    records.push(paxRecord("path", name));
    name = shortened(name);
  }
  if (!fits(link, 100)) {
    records.push(paxRecord("linkpath", link));
    link = shortened(link);
  }
  if (size > OCTAL_11_MAX) {
    records.push(paxRecord("size", String(size)));
    size = 0;
  }
  if (mtime < 0 || mtime > OCTAL_11_MAX) {
    records.push(paxRecord("mtime", String(mtime)));
    mtime = 0;
  }
  const entry = ustar(fields, name, link, size, mtime);
  if (!records.length) return entry;
  const data = Buffer.concat(records);
  const paxFields = { name: "", type: "x", mode: 0o644, mtime: 0, size: data.length };
  const paxHeader = ustar(paxFields, "././@PaxHeader", "", data.length, 0);
  return Buffer.concat([paxHeader, data, Buffer.alloc(padding(data.length)), entry]);
}

/** The zero bytes after an entry's `size` bytes of data. */
export function dataPadding(size: number): Buffer {
  return Buffer.alloc(padding(size));
}

/** The end of an archive: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
