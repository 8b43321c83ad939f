// Tells the server which project this page has on screen (`client_focus`), so that it pushes no
// notification to this device about what the person is looking at: the project of the project
// view while the page is visible, none (null) on the list, when leaving, or when the page is
// hidden (another app, screen off). Sent on each change and again after every reconnect (the
// server forgets a closed connection's focus).
import { Connection } from './conn';

export class FocusReporter {
  private projectId: string | null = null;
  private sent: string | null | undefined = undefined;  // undefined: nothing sent on this connection

  private onVisibility = () => this.report();
  private onOpen = () => {
    this.sent = undefined;
    this.report();
  };

  constructor(private conn: Connection) {
    document.addEventListener('visibilitychange', this.onVisibility);
    conn.onOpen.add(this.onOpen);
  }

  destroy(): void {
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.conn.onOpen.delete(this.onOpen);
  }

  // The project view now shown (null: none).
  set(projectId: string | null): void {
    this.projectId = projectId;
    this.report();
  }

  private report(): void {
    const focus = document.visibilityState === 'visible' ? this.projectId : null;
    // A fresh connection has no focus on the server: nothing to clear there.
    if (focus === this.sent || (focus === null && this.sent === undefined)) return;
    if (this.conn.send('client_focus', { project_id: focus })) this.sent = focus;
  }
}
