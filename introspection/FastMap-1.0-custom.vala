namespace FastMap {
	[CCode (cheader_filename = "fastmap.h", cname = "FmFunction", has_target = false)]
	public delegate GLib.Variant? WorkerFunction (GLib.Variant task, void* user_data) throws GLib.Error;
}
