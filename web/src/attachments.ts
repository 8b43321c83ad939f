// Attachments (issue 19): files sent with a prompt, and their thumbnails in history.
// - AttachmentTray: the prompt box's part. Files come from the picker (images and text), a
//   photo from the phone's camera (`capture`), or an image pasted into the prompt. Each shows as
//   a removable thumbnail (an image) or chip (a text file) until the prompt is sent.
// - attachmentList: what a history entry's `attachments` references show. Images are fetched
//   with get_attachment and shown from a blob: URL (the CSP's img-src allows blob:, which only
//   this page's script can make); text files are chips that open their text on demand.
// The server checks every file's type against its bytes; the console only picks the type to
// claim (the browser's, or text/plain for a text file the browser has no type for).
import './attachments.css';
import type { Connection } from './conn';
import { h } from './dom';

export interface Attachment { name: string; media_type: string; data: string }
interface Pending extends Attachment { url: string | null }
export interface AttachmentRef { name?: unknown; media_type?: unknown; bytes?: unknown; sha256?: unknown }

const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
const TEXT_APP_TYPES = ['application/json', 'application/javascript', 'application/typescript',
  'application/xml', 'application/yaml', 'application/x-yaml', 'application/toml', 'application/x-sh',
  'application/sql'];
const TEXT_EXTENSIONS = /\.(txt|md|markdown|log|csv|tsv|json|ya?ml|toml|ini|cfg|conf|xml|html?|css|scss|js|mjs|cjs|ts|tsx|jsx|py|rb|go|rs|c|cc|cpp|cxx|h|hh|hpp|java|kt|swift|sh|bash|zsh|sql|php|pl|lua|r|diff|patch)$/i;
const ACCEPT = [...IMAGE_TYPES, 'text/*', ...TEXT_APP_TYPES,
  '.md', '.log', '.json', '.yaml', '.yml', '.toml', '.ts', '.tsx', '.py', '.go', '.rs', '.c', '.cc',
  '.cpp', '.h', '.hpp', '.java', '.kt', '.swift', '.sh', '.sql', '.rb', '.php'].join(',');

function toBase64(bytes: Uint8Array): string {
  let text = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    text += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(text);
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

// The type to claim for a file, or null when the server would not take it.
function mediaTypeOf(file: File): string | null {
  const type = file.type.toLowerCase();
  if (IMAGE_TYPES.includes(type)) return type;
  if (/^text\/[a-z0-9.+_-]+$/.test(type) || TEXT_APP_TYPES.includes(type)) return type;
  if (!type.startsWith('image/') && TEXT_EXTENSIONS.test(file.name)) return 'text/plain';
  return null;
}

// A name the server takes: no path separators or control characters, at most 255 bytes.
function safeName(name: string, fallback: string): string {
  let clean = name.replace(/[/\\\u0000-\u001f\u007f-\u009f]/g, '_').trim();
  while (new TextEncoder().encode(clean).length > 255) clean = clean.slice(0, -1);
  return clean || fallback;
}

// Photos and screenshots are made smaller before they are sent: the model API scales any image
// whose long edge is over 1568 px down to that anyway, and a phone photo (3-5 MB) would not fit
// in the server's default message size (1 MiB, base64 adding a third). A PNG stays a PNG when
// it is small enough (text in screenshots stays sharp), else becomes a JPEG. GIFs (maybe
// animated) and images the browser cannot decode are sent as they are; the size check before
// sending then says what is too big.
const MAX_IMAGE_EDGE = 1568;
const SMALL_IMAGE_BYTES = 600 * 1024;

async function fitImage(file: File, type: string): Promise<{ blob: Blob; type: string }> {
  const original = { blob: file as Blob, type };
  if (type === 'image/gif' || typeof createImageBitmap !== 'function') return original;
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return original;
  }
  const edge = Math.max(bitmap.width, bitmap.height);
  if (edge <= MAX_IMAGE_EDGE && file.size <= SMALL_IMAGE_BYTES) {
    bitmap.close();
    return original;
  }
  const scale = Math.min(1, MAX_IMAGE_EDGE / edge);
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext('2d')?.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const encode = (as: string, quality?: number) =>
    new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, as, quality));
  if (type === 'image/png') {
    const png = await encode('image/png');
    if (png && png.size <= SMALL_IMAGE_BYTES) return { blob: png, type: 'image/png' };
  }
  const jpeg = await encode('image/jpeg', 0.85);
  return jpeg && jpeg.size < file.size ? { blob: jpeg, type: 'image/jpeg' } : original;
}

export class AttachmentTray {
  readonly el: HTMLElement;
  readonly buttons: HTMLElement;
  private list: HTMLElement;
  private items: Pending[] = [];
  private picker: HTMLInputElement;
  private camera: HTMLInputElement;

  constructor(private onProblem: (text: string) => void) {
    this.picker = h('input', { type: 'file', multiple: true, accept: ACCEPT, hidden: true, 'data-testid': 'attach-input' });
    this.camera = h('input', { type: 'file', accept: 'image/*', capture: 'environment', hidden: true });
    for (const input of [this.picker, this.camera]) {
      input.addEventListener('change', () => {
        void this.addFiles(Array.from(input.files ?? []));
        input.value = '';
      });
    }
    const attach = h('button', { type: 'button', title: 'Attach images or text files' }, 'Attach');
    attach.addEventListener('click', () => this.picker.click());
    const photo = h('button', { type: 'button', class: 'photo', title: 'Take a photo' }, 'Photo');
    photo.addEventListener('click', () => this.camera.click());
    this.buttons = h('span', { class: 'attach-buttons' }, attach, photo, this.picker, this.camera);
    this.list = h('ul', { class: 'attachments tray', 'aria-label': 'Attachments', 'data-testid': 'attachment-tray' });
    this.el = this.list;
    this.list.hidden = true;
  }

  // Images pasted into `target` (a screenshot) are attached; text pastes as usual.
  watchPaste(target: HTMLElement): void {
    target.addEventListener('paste', (e: ClipboardEvent) => {
      const files = Array.from(e.clipboardData?.files ?? []).filter((f) => f.type.startsWith('image/'));
      if (files.length === 0) return;
      e.preventDefault();
      void this.addFiles(files);
    });
  }

  get count(): number {
    return this.items.length;
  }

  // What execute sends; the tray keeps them until clear() (a refused execute can be sent again).
  take(): Attachment[] {
    return this.items.map(({ name, media_type, data }) => ({ name, media_type, data }));
  }

  clear(): void {
    for (const item of this.items) if (item.url) URL.revokeObjectURL(item.url);
    this.items = [];
    this.render();
  }

  async addFiles(files: File[]): Promise<void> {
    for (const file of files) {
      const type = mediaTypeOf(file);
      if (!type) {
        this.onProblem(`${file.name || 'That file'} cannot be attached: send PNG, JPEG, GIF or WebP images, or text files.`);
        continue;
      }
      const fitted = type.startsWith('image/') ? await fitImage(file, type) : { blob: file, type };
      const bytes = new Uint8Array(await fitted.blob.arrayBuffer());
      const fallback = type.startsWith('image/') ? `pasted-${this.items.length + 1}.${type.slice(6)}` : 'file.txt';
      let name = safeName(file.name, fallback);
      if (fitted.type !== type) name = name.replace(/(\.[a-z0-9]+)?$/i, '.jpg');
      this.items.push({
        name,
        media_type: fitted.type,
        data: toBase64(bytes),
        url: fitted.type.startsWith('image/') ? URL.createObjectURL(fitted.blob) : null,
      });
    }
    this.render();
  }

  private render(): void {
    this.list.replaceChildren(...this.items.map((item, i) => {
      const remove = h('button', { type: 'button', class: 'remove', title: `Remove ${item.name}`, 'aria-label': `Remove ${item.name}` }, '×');
      remove.addEventListener('click', () => {
        if (item.url) URL.revokeObjectURL(item.url);
        this.items.splice(i, 1);
        this.render();
      });
      return h('li', { class: 'attachment' },
        item.url ? h('img', { src: item.url, alt: item.name, class: 'thumb' }) : h('span', { class: 'chip mono' }, item.name),
        remove);
    }));
    this.list.hidden = this.items.length === 0;
  }
}

// One page's cache of fetched attachments (sha256 → blob: URL or text), so an entry rendered
// again (raw toggle, catch-up) does not fetch again.
const cache = new Map<string, Promise<{ url: string; text: string | null }>>();

function fetchAttachment(conn: Connection, projectId: string, sha: string, isImage: boolean) {
  let got = cache.get(sha);
  if (!got) {
    got = conn.request('get_attachment', projectId, { sha256: sha }).then((r) => {
      const bytes = fromBase64(String(r.data.data ?? ''));
      const type = String(r.data.media_type ?? '');
      if (isImage) return { url: URL.createObjectURL(new Blob([bytes], { type })), text: null };
      return { url: '', text: new TextDecoder().decode(bytes) };
    });
    got.catch(() => cache.delete(sha));  // a later render may try again
    cache.set(sha, got);
  }
  return got;
}

function sizeText(bytes: unknown): string {
  const n = Number(bytes);
  if (!Number.isFinite(n)) return '';
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : n >= 1024 ? `${Math.round(n / 1024)} KB` : `${n} B`;
}

// The attachments of a prompt in history: image thumbnails and text file chips.
export function attachmentList(refs: AttachmentRef[], conn: Connection, projectId: string): HTMLElement {
  return h('ul', { class: 'attachments', 'aria-label': 'Attachments' }, ...refs.map((ref) => {
    const name = String(ref.name ?? '');
    const sha = typeof ref.sha256 === 'string' ? ref.sha256 : '';
    const type = String(ref.media_type ?? '');
    const label = `${name} · ${sizeText(ref.bytes)}`;
    if (IMAGE_TYPES.includes(type)) {
      const img = h('img', { class: 'thumb', alt: name, title: label, 'data-testid': 'history-thumb' });
      const li = h('li', { class: 'attachment' }, img);
      fetchAttachment(conn, projectId, sha, true).then(
        ({ url }) => { img.src = url; },
        () => { li.replaceChildren(h('span', { class: 'chip muted' }, `${name} (unavailable)`)); });
      return li;
    }
    const body = h('pre', { class: 'attachment-text' });
    const details = h('details', { class: 'chip-details' }, h('summary', { class: 'chip mono' }, label), body);
    details.addEventListener('toggle', () => {
      if (!details.open || body.textContent) return;
      fetchAttachment(conn, projectId, sha, false).then(
        ({ text }) => { body.textContent = text ?? ''; },
        () => { body.textContent = 'This file is no longer available.'; });
    });
    return h('li', { class: 'attachment' }, details);
  }));
}
