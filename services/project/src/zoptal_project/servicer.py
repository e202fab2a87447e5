"""gRPC endpoints of ProjectService: validate, call the services, build replies."""

from __future__ import annotations

import grpc
from meshcore.context import require_principal
from meshcore.errors import InvalidArgument
from meshcore.timeutil import to_timestamp
from meshcore.validation import Violations
from zoptal.project.v1 import project_pb2 as pb, project_pb2_grpc

from zoptal_project import validation
from zoptal_project.access import Action, Role
from zoptal_project.domain import Member, Project
from zoptal_project.members import MembershipService
from zoptal_project.service import ProjectService

__all__ = ["ProjectServicer"]

Context = grpc.aio.ServicerContext[object, object]

_ROLE_TO_PB: dict[Role, pb.ProjectRole.ValueType] = {
    Role.OWNER: pb.PROJECT_ROLE_OWNER,
    Role.EDITOR: pb.PROJECT_ROLE_EDITOR,
    Role.VIEWER: pb.PROJECT_ROLE_VIEWER,
}
_ACTION_FROM_PB: dict[pb.ProjectAction.ValueType, Action] = {
    pb.PROJECT_ACTION_READ: Action.READ,
    pb.PROJECT_ACTION_UPDATE: Action.UPDATE,
    pb.PROJECT_ACTION_DELETE: Action.DELETE,
    pb.PROJECT_ACTION_MANAGE_MEMBERS: Action.MANAGE_MEMBERS,
}
# Roles a member can be given; the owner is fixed at creation.
_GRANTABLE_ROLES = {pb.PROJECT_ROLE_EDITOR: Role.EDITOR, pb.PROJECT_ROLE_VIEWER: Role.VIEWER}


def _role(role: Role | None) -> pb.ProjectRole.ValueType:
    return pb.PROJECT_ROLE_UNSPECIFIED if role is None else _ROLE_TO_PB[role]


def project_to_pb(project: Project) -> pb.Project:
    return pb.Project(
        id=project.id,
        name=project.name,
        description=project.description,
        owner_id=project.owner_id,
        version=project.version,
        member_count=project.member_count,
        created_at=to_timestamp(project.created_at),
        updated_at=to_timestamp(project.updated_at),
    )


def member_to_pb(member: Member) -> pb.ProjectMember:
    return pb.ProjectMember(
        project_id=member.project_id,
        user_id=member.user_id,
        role=_ROLE_TO_PB[member.role],
        joined_at=to_timestamp(member.joined_at),
        updated_at=to_timestamp(member.updated_at),
    )


def _action(value: pb.ProjectAction.ValueType) -> Action:
    action = _ACTION_FROM_PB.get(value)
    if action is None:
        raise InvalidArgument("action", "must be a known action, not UNSPECIFIED")
    return action


def _grantable_role(value: pb.ProjectRole.ValueType) -> Role:
    role = _GRANTABLE_ROLES.get(value)
    if role is None:
        raise InvalidArgument("role", "must be PROJECT_ROLE_EDITOR or PROJECT_ROLE_VIEWER")
    return role


class ProjectServicer(project_pb2_grpc.ProjectServiceServicer):
    def __init__(self, projects: ProjectService, members: MembershipService) -> None:
        self._projects = projects
        self._members = members

    async def GetProject(
        self, request: pb.GetProjectRequest, context: Context
    ) -> pb.GetProjectResponse:
        project_id = validation.identifier("project_id", request.project_id)
        project, role = await self._projects.get_project(require_principal(), project_id)
        return pb.GetProjectResponse(project=project_to_pb(project), caller_role=_role(role))

    async def ListUserProjects(
        self, request: pb.ListUserProjectsRequest, context: Context
    ) -> pb.ListUserProjectsResponse:
        with Violations() as violations:
            with violations.check():
                user_id = validation.optional_identifier("user_id", request.user_id) or None
            with violations.check():
                page, limit = validation.page_and_limit(request.page, request.limit)
        result = await self._projects.list_user_projects(require_principal(), user_id, page, limit)
        return pb.ListUserProjectsResponse(
            projects=[
                pb.UserProject(project=project_to_pb(project), role=_ROLE_TO_PB[role])
                for project, role in result.items
            ],
            total_count=result.total_count,
            page=result.page,
            limit=result.limit,
        )

    async def CreateProject(
        self, request: pb.CreateProjectRequest, context: Context
    ) -> pb.CreateProjectResponse:
        with Violations() as violations:
            with violations.check():
                name = validation.name("name", request.name)
            with violations.check():
                description = validation.description("description", request.description)
            with violations.check():
                owner_id = validation.optional_identifier("owner_id", request.owner_id) or None
            with violations.check():
                request_id = validation.request_id("request_id", request.request_id)
        project = await self._projects.create_project(
            require_principal(),
            name=name,
            description=description,
            owner_id=owner_id,
            request_id=request_id,
        )
        return pb.CreateProjectResponse(project=project_to_pb(project))

    async def UpdateProject(
        self, request: pb.UpdateProjectRequest, context: Context
    ) -> pb.UpdateProjectResponse:
        with Violations() as violations:
            with violations.check():
                project_id = validation.identifier("project_id", request.project_id)
            if request.version < 1:
                violations.add("version", "must be the version you read (1 or more)")
            if not request.HasField("name") and not request.HasField("description"):
                violations.add("name", "set name, description or both")
            with violations.check():
                name = validation.name("name", request.name) if request.HasField("name") else None
            with violations.check():
                description = (
                    validation.description("description", request.description)
                    if request.HasField("description")
                    else None
                )
        project = await self._projects.update_project(
            require_principal(), project_id, request.version, name=name, description=description
        )
        return pb.UpdateProjectResponse(project=project_to_pb(project))

    async def DeleteProject(
        self, request: pb.DeleteProjectRequest, context: Context
    ) -> pb.DeleteProjectResponse:
        with Violations() as violations:
            with violations.check():
                project_id = validation.identifier("project_id", request.project_id)
            if request.version < 0:
                violations.add("version", "must be 0 (any) or the version you read")
        await self._projects.delete_project(require_principal(), project_id, request.version)
        return pb.DeleteProjectResponse()

    async def CheckProjectAccess(
        self, request: pb.CheckProjectAccessRequest, context: Context
    ) -> pb.CheckProjectAccessResponse:
        with Violations() as violations:
            with violations.check():
                user_id = validation.identifier("user_id", request.user_id)
            with violations.check():
                project_id = validation.identifier("project_id", request.project_id)
            with violations.check():
                action = _action(request.action)
        allowed, role = await self._projects.check_access(
            require_principal(), user_id, project_id, action
        )
        return pb.CheckProjectAccessResponse(allowed=allowed, role=_role(role))

    async def AddProjectMember(
        self, request: pb.AddProjectMemberRequest, context: Context
    ) -> pb.AddProjectMemberResponse:
        with Violations() as violations:
            with violations.check():
                project_id = validation.identifier("project_id", request.project_id)
            with violations.check():
                user_id = validation.identifier("user_id", request.user_id)
            with violations.check():
                role = _grantable_role(request.role)
        member = await self._members.add_member(require_principal(), project_id, user_id, role)
        return pb.AddProjectMemberResponse(member=member_to_pb(member))

    async def RemoveProjectMember(
        self, request: pb.RemoveProjectMemberRequest, context: Context
    ) -> pb.RemoveProjectMemberResponse:
        with Violations() as violations:
            with violations.check():
                project_id = validation.identifier("project_id", request.project_id)
            with violations.check():
                user_id = validation.identifier("user_id", request.user_id)
        await self._members.remove_member(require_principal(), project_id, user_id)
        return pb.RemoveProjectMemberResponse()

    async def ListProjectMembers(
        self, request: pb.ListProjectMembersRequest, context: Context
    ) -> pb.ListProjectMembersResponse:
        with Violations() as violations:
            with violations.check():
                project_id = validation.identifier("project_id", request.project_id)
            with violations.check():
                page, limit = validation.page_and_limit(request.page, request.limit)
        result = await self._members.list_members(require_principal(), project_id, page, limit)
        return pb.ListProjectMembersResponse(
            members=[member_to_pb(member) for member in result.items],
            total_count=result.total_count,
            page=result.page,
            limit=result.limit,
        )
