// zh-CN first, en on request: every label the screens show, in both languages.
// The choice is kept in localStorage and set on <html lang> (screen readers and axe read it).

const ZH = {
  app_title: '物业巡查监控中心', guard_title: '巡逻岗', login_title: '登录', username: '用户名', password: '密码',
  login: '登录', logout: '退出', login_again: '登录已过期，请重新登录（您输入的内容已保留）',
  login_failed: '用户名或密码错误', login_locked: '尝试次数过多，请稍后再试', role: '角色', site: '小区',
  nav_overview: '总览', nav_alarms: '实时报警', nav_tickets: '应急工单', nav_patrol: '巡查看板', nav_devices: '设备状态',
  live_open: '实时连接正常', live_connecting: '正在连接…', live_closed: '连接中断，正在重连…', live_forbidden: '无权查看实时动态',
  sound_on: '声音已开启', sound_enable: '开启报警声音', critical_new: '新的紧急报警', dismiss: '知道了',
  active_alarms: '活动报警', critical: '紧急', unacknowledged: '未确认', overdue_tickets: '超时工单', open_tickets: '未关闭工单',
  rounds_today: '今日巡查', on_time: '准时', late: '迟到', missed: '漏巡', in_progress: '进行中', scheduled: '未开始', not_started: '已到时未签到',
  completed: '已完成', incomplete: '未完成', early: '提前', pending: '待巡',
  floors: '楼层', locations: '位置', back: '返回', no_items: '暂无', building: '楼栋', floor: '楼层',
  severity: '级别', type: '类型', device: '设备', location: '位置', age: '持续', ack_by: '确认时限', state: '状态',
  actions: '操作', acknowledge: '确认', snooze: '暂停报警', comment: '备注', reason: '原因', minutes: '分钟',
  submit: '提交', cancel: '取消', acknowledged: '已确认', active: '活动', cleared: '已解除', count: '次数',
  ack_comment_label: '确认备注（处置情况）', snooze_reason_label: '暂停原因（必填）', snooze_minutes_label: '暂停时长（分钟）',
  sev_critical: '紧急', sev_major: '严重', sev_warning: '预警', sev_minor: '一般', sev_info: '提示',
  ticket: '工单', title: '事件', escalation: '升级', deadlines: '时限', steps: '处置步骤', events: '处理记录',
  steps_done: '已完成步骤', open: '待处理', closed: '已关闭', check_step: '完成', not_applicable: '不适用',
  safety_critical: '安全关键', confirm_safety: '我确认已做到这一安全要求', confirm: '确认',
  done_by: '完成人', overdue: '已超时', due_in: '剩余', ack_by_k: '确认', notify_engineering_by: '通知工程部',
  on_site_by: '到场', resolve_by: '处理完毕', level: '级别', first_responder: '首先响应',
  guard: '保安员', route: '路线', area: '区域', completion: '完成率', next_checkpoint: '下一巡查点',
  last_seen: '最后出现', alert: '漏巡告警', close_alert: '关闭告警', alert_comment_label: '关闭说明（必填）',
  battery: '电量', online: '在线', offline: '离线', low_battery: '电量低', last_report: '最后上报', kind: '类型',
  all_devices: '全部设备', problems_only: '仅显示异常', all_rounds_today: '显示今日全部巡查（默认只显示前后两小时内）', my_round: '我的巡查', next_point: '下一个巡查点',
  no_round: '当前没有巡查任务', report_finding: '上报问题', category: '类别', note: '说明', photo: '照片',
  take_photo: '拍照', finding_sent: '已上报，工单号', my_tickets: '我的工单', refresh: '刷新', due: '应到',
  signed: '已签到', points: '巡查点', error: '出错了', retry: '重试', lang_switch: 'English',
  alarms_by_type: '报警类型分布', round_results: '今日巡查结果', chart: '图表', since: '开始于', window: '时段', until: '截止',
  ticket_state_open: '待确认', ticket_state_acknowledged: '处理中', ticket_state_closed: '已关闭',
  opened: '开单', none: '无', seconds_short: '秒', you: '我', skip_to_main: '跳到主要内容', details: '详情',
  forbidden: '您的角色无权执行此操作', saved: '已保存', system: '系统', select: '请选择',
};

const EN = {
  app_title: 'Patrol control room', guard_title: 'Guard', login_title: 'Log in', username: 'Username', password: 'Password',
  login: 'Log in', logout: 'Log out', login_again: 'Your session expired: log in again (what you typed is kept)',
  login_failed: 'Wrong username or password', login_locked: 'Too many attempts: try again later', role: 'Role', site: 'Site',
  nav_overview: 'Overview', nav_alarms: 'Live alarms', nav_tickets: 'Emergency tickets', nav_patrol: 'Patrol board',
  nav_devices: 'Device health', live_open: 'Live', live_connecting: 'Connecting…', live_closed: 'Disconnected: reconnecting…',
  live_forbidden: 'Not allowed to watch the live feed', sound_on: 'Sound on', sound_enable: 'Turn alarm sound on',
  critical_new: 'New critical alarm', dismiss: 'Dismiss',
  active_alarms: 'Active alarms', critical: 'Critical', unacknowledged: 'Unacknowledged', overdue_tickets: 'Overdue tickets',
  open_tickets: 'Open tickets', rounds_today: 'Rounds today', on_time: 'On time', late: 'Late', missed: 'Missed',
  in_progress: 'In progress', scheduled: 'Scheduled', not_started: 'Due, no sign-in yet', completed: 'Completed', incomplete: 'Incomplete', early: 'Early',
  pending: 'Pending', floors: 'Floors', locations: 'Locations', back: 'Back', no_items: 'Nothing here', building: 'Building',
  floor: 'Floor', severity: 'Severity', type: 'Type', device: 'Device', location: 'Location', age: 'Age', ack_by: 'Ack by',
  state: 'State', actions: 'Actions', acknowledge: 'Acknowledge', snooze: 'Snooze', comment: 'Comment', reason: 'Reason',
  minutes: 'minutes', submit: 'Submit', cancel: 'Cancel', acknowledged: 'Acknowledged', active: 'Active', cleared: 'Cleared',
  count: 'Count', ack_comment_label: 'Acknowledgement comment (what is being done)', snooze_reason_label: 'Reason (required)',
  snooze_minutes_label: 'Snooze for (minutes)', sev_critical: 'Critical', sev_major: 'Major', sev_warning: 'Warning',
  sev_minor: 'Minor', sev_info: 'Info', ticket: 'Ticket', title: 'Incident', escalation: 'Escalation', deadlines: 'Deadlines',
  steps: 'Procedure steps', events: 'History', steps_done: 'Steps done', open: 'Open', closed: 'Closed', check_step: 'Done',
  not_applicable: 'N/A', safety_critical: 'Safety-critical', confirm_safety: 'I confirm this safety requirement was met',
  confirm: 'Confirm', done_by: 'Done by', overdue: 'Overdue', due_in: 'Due in', ack_by_k: 'Acknowledge',
  notify_engineering_by: 'Notify engineering', on_site_by: 'On site', resolve_by: 'Resolved', level: 'Level',
  first_responder: 'First responder', guard: 'Guard', route: 'Route', area: 'Area', completion: 'Completion',
  next_checkpoint: 'Next checkpoint', last_seen: 'Last seen', alert: 'Missed-point alert', close_alert: 'Close alert',
  alert_comment_label: 'Closing comment (required)', battery: 'Battery', online: 'Online', offline: 'Offline',
  low_battery: 'Low battery', last_report: 'Last report', kind: 'Kind', all_devices: 'All devices',
  problems_only: 'Problems only', all_rounds_today: "All of today's rounds (by default the two hours around now)", my_round: 'My round', next_point: 'Next checkpoint', no_round: 'No round for you now',
  report_finding: 'Report a finding', category: 'Category', note: 'Note', photo: 'Photo', take_photo: 'Take a photo',
  finding_sent: 'Reported, ticket', my_tickets: 'My tickets', refresh: 'Refresh', due: 'Due', signed: 'Signed',
  points: 'Checkpoints', error: 'Something went wrong', retry: 'Retry', lang_switch: '中文',
  alarms_by_type: 'Active alarms by type', round_results: "Today's round results", chart: 'Chart', since: 'Since', window: 'Window',
  until: 'Until', ticket_state_open: 'Waiting', ticket_state_acknowledged: 'In hand', ticket_state_closed: 'Closed',
  opened: 'Opened', none: 'None', seconds_short: 's', you: 'me', skip_to_main: 'Skip to main content', details: 'Details',
  forbidden: 'Your role may not do this', saved: 'Saved', system: 'system', select: 'Choose',
};

const DICTS = { 'zh-CN': ZH, en: EN };
const KEY = 'patrol.lang';
let current = localStorage.getItem(KEY) === 'en' ? 'en' : 'zh-CN';
const listeners = new Set();
document.documentElement.lang = current;

export function lang() { return current; }

export function setLang(next) {
  current = next === 'en' ? 'en' : 'zh-CN';
  localStorage.setItem(KEY, current);
  document.documentElement.lang = current;
  listeners.forEach((fn) => fn(current));
}

export function onLang(fn) { listeners.add(fn); return () => listeners.delete(fn); }

/** A label; an unknown key shows itself (a missing translation is visible, not blank). */
export function t(key) { return DICTS[current][key] ?? ZH[key] ?? key; }

/** A bilingual name from the API ({zh, en}) in the chosen language. */
export function nm(name) {
  if (!name) return '';
  if (typeof name === 'string') return name;
  return current === 'en' ? (name.en || name.zh) : (name.zh || name.en);
}

/** Alarm types, procedures' kinds and the like: a label when we have one, else the code. */
const CODES = {
  'zh-CN': { gas: '燃气泄漏', water: '漏水', smoke: '烟感', leakage: '漏电', elevator: '电梯', door: '门磁',
    offline: '设备离线', low_battery: '电量低', door_open: '门未关', elevator_fault: '电梯故障', water_leak: '漏水',
    alarm_elevator: '电梯故障', alarm_door_open: '门未关/非时开门', gas_leak: '燃气泄漏', electric_leak: '漏电', fixed_reader: '固定读卡器', handheld_reader: '巡更机', electrical_leakage: '漏电', fire_smoke: '烟雾/火警', reader: '读卡器', nfc_reader: '读卡器',
    security: '保安部', engineering: '工程部', cleaning: '保洁部', management: '管理处', customer_service: '客服中心',
    control_room: '监控中心', supervisor: '主管', manager: '经理', admin: '管理员', guard: '保安员', engineer: '工程人员',
    on_duty: '当班人员', shift_leader: '班长', department_head: '部门负责人', general_manager: '总经理',
    ev_opened: '开单', ev_acknowledged: '确认接单', ev_step_done: '完成步骤', ev_step_not_applicable: '步骤不适用',
    ev_alarm_cleared: '报警解除', ev_closed: '关闭', ev_escalated: '升级', ev_reminder: '提醒', ev_note: '备注',
    ev_alarm_attached: '关联报警', ev_alarm_rose: '报警升级', ev_muster: '紧急集合',
    ev_finding: '巡查发现', ev_nobody_on_duty: '无人当班', environment: '环境部', finance: '财务部' },
  en: { gas: 'Gas', water: 'Water leak', smoke: 'Smoke', leakage: 'Electrical leakage', elevator: 'Elevator',
    door: 'Door sensor', offline: 'Device offline', low_battery: 'Low battery', door_open: 'Door open',
    elevator_fault: 'Elevator fault', water_leak: 'Water leak', alarm_elevator: 'Elevator fault', alarm_door_open: 'Door open',
    gas_leak: 'Gas leak', electric_leak: 'Electrical leakage',
    fixed_reader: 'Fixed reader', handheld_reader: 'Handheld reader', electrical_leakage: 'Electrical leakage',
    fire_smoke: 'Smoke / fire', reader: 'Reader', nfc_reader: 'Reader', security: 'Security', engineering: 'Engineering',
    cleaning: 'Cleaning', management: 'Management office', customer_service: 'Customer service',
    control_room: 'Control room', supervisor: 'Supervisor', manager: 'Manager', admin: 'Admin', guard: 'Guard',
    engineer: 'Engineer', on_duty: 'On duty', shift_leader: 'Shift leader', department_head: 'Department head',
    general_manager: 'General manager', ev_opened: 'Opened', ev_acknowledged: 'Acknowledged',
    ev_step_done: 'Step done', ev_step_not_applicable: 'Step not applicable', ev_alarm_cleared: 'Alarm cleared',
    ev_closed: 'Closed', ev_escalated: 'Escalated', ev_reminder: 'Reminder', ev_note: 'Note',
    ev_alarm_attached: 'Alarm attached', ev_alarm_rose: 'Alarm rose', ev_muster: 'Muster',
    ev_finding: 'Finding', ev_nobody_on_duty: 'Nobody on duty', environment: 'Environment', finance: 'Finance' },
};

export function code(value) { return CODES[current][value] ?? value ?? ''; }

/** An alarm type's label (an elevator alarm is a fault, the device kind just an elevator). */
export function alarmType(value) { return CODES[current][`alarm_${value}`] ?? code(value); }
