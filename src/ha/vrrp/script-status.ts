/** The rise/fall counting of a vrrp_script's results (keepalived: `rise` successes to be OK, `fall` failures to fail). */
export class ScriptStatus {
  ok = true;
  private streak = 0;

  constructor(
    private readonly rise: number,
    private readonly fall: number,
  ) {}

  /** Record one run; returns the new status when it changed, otherwise undefined. */
  result(success: boolean): boolean | undefined {
    if (success === this.ok) {
      this.streak = 0;
      return undefined;
    }
    this.streak++;
    if (this.streak < (success ? this.rise : this.fall)) return undefined;
    this.streak = 0;
    this.ok = success;
    return success;
  }
}
